//! Receipts in the chat mirror: a batch's receipts merged per device and status, and moved into
//! the stored messages with one statement per status and earlier status for all the batch's
//! devices together (at most four, however many devices and receipts).

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDateTime;
use diesel::sql_types::{Array, BigInt, Text, Timestamp};
use diesel::QueryableByName;

use super::store::ChatWrite;
use crate::db::sql::Pairs;
use crate::db::{Conn, DbError};
use crate::stats::model::Bumps;

/// Receipt statuses in the order a message moves through them.
const STATUSES: [&str; 3] = ["delivered", "read", "failed"];

/// Statuses a message may move from to reach `target`.
fn earlier_statuses(target: &str) -> &'static [&'static str] {
    match target {
        "delivered" => &["sent"],
        "read" => &["sent", "delivered"],
        // The server refused a message it had not acknowledged yet.
        "failed" => &["sent"],
        _ => &[],
    }
}

/// Where `status` stands in [`STATUSES`] (anything else after them).
fn rank(status: &str) -> usize {
    STATUSES
        .iter()
        .position(|s| *s == status)
        .unwrap_or(STATUSES.len())
}

/// A batch's receipts merged: one per device and status, in the order a message moves
/// (`delivered`, `read`, then `failed`), each id once, in arrival order. Applied in this order,
/// a message whose receipts came in any order ends at its furthest status with each step counted
/// once; `failed` moves only a message no other receipt of the batch moved.
pub fn acks_by_status<'a>(
    writes: impl IntoIterator<Item = &'a ChatWrite>,
) -> Vec<(i64, &'static str, Vec<String>)> {
    let mut groups: BTreeMap<(i64, usize), (&'static str, Vec<String>)> = BTreeMap::new();
    let mut seen: HashSet<(i64, usize, &'a str)> = HashSet::new();
    for write in writes {
        if let ChatWrite::Ack {
            device_id,
            wa_ids,
            status,
        } = write
        {
            let key = (*device_id, rank(status));
            let (_, ids) = groups.entry(key).or_insert_with(|| (*status, Vec::new()));
            for id in wa_ids {
                if seen.insert((key.0, key.1, id)) {
                    ids.push(id.clone());
                }
            }
        }
    }
    groups
        .into_iter()
        .map(|((device_id, _), (status, ids))| (device_id, status, ids))
        .collect()
}

/// A message a receipt moved.
#[derive(QueryableByName)]
struct Moved {
    #[diesel(sql_type = BigInt)]
    tenant_id: i64,
    #[diesel(sql_type = BigInt)]
    device_id: i64,
    #[diesel(sql_type = Timestamp)]
    sent_at: NaiveDateTime,
    #[diesel(sql_type = Text)]
    wa_id: String,
}

/// Moves the messages `writes`' receipts acknowledge forward (never backwards), on the batch's
/// connection inside its transaction, counting each step in `counts`. One statement per status
/// and earlier status (so the counts know what moved where), for every device at once. Answers
/// the receipts that moved messages, one per device and status: (device, the ids that moved,
/// status).
pub async fn apply<'a>(
    mut conn: Conn<'_>,
    writes: impl IntoIterator<Item = &'a ChatWrite>,
    counts: &mut Bumps,
) -> Result<Vec<(i64, Vec<String>, &'static str)>, DbError> {
    let mut named: BTreeMap<usize, Pairs> = BTreeMap::new();
    for (device_id, status, ids) in acks_by_status(writes) {
        named
            .entry(rank(status))
            .or_default()
            .extend(device_id, ids);
    }
    let mut acked: BTreeMap<(i64, usize), Vec<String>> = BTreeMap::new();
    for (rank, pairs) in &named {
        let Some(status) = STATUSES.get(*rank).copied() else {
            continue;
        };
        for from in earlier_statuses(status) {
            for moved in move_named(conn.reborrow(), pairs, from, status).await? {
                counts.ack(
                    moved.tenant_id,
                    moved.device_id,
                    moved.sent_at,
                    from,
                    status,
                );
                acked
                    .entry((moved.device_id, *rank))
                    .or_default()
                    .push(moved.wa_id);
            }
        }
    }
    Ok(acked
        .into_iter()
        .map(|((device_id, rank), ids)| (device_id, ids, STATUSES[rank]))
        .collect())
}

/// The statement moving messages by receipt, the same on either backend but for its
/// parameters: the pairs' `source` first, then the status to move `to` and the one to move
/// `from`.
fn ack_statement(source: &str, [to, from]: [&str; 2]) -> String {
    format!(
        "UPDATE messages SET status = {to} FROM {source} WHERE messages.device_id = \
         named.device_id AND messages.wa_id = named.wa_id AND messages.status = {from} \
         RETURNING messages.tenant_id, messages.device_id, messages.sent_at, messages.wa_id"
    )
}

/// Moves the messages `pairs` names that are `from` to `to`; answers them.
async fn move_named(
    conn: Conn<'_>,
    pairs: &Pairs,
    from: &str,
    to: &str,
) -> Result<Vec<Moved>, DbError> {
    use diesel_async::RunQueryDsl;
    let moved = match conn {
        Conn::Postgres(conn) => {
            let (devices, ids) = pairs.arrays();
            diesel::sql_query(ack_statement(Pairs::PG_SOURCE, ["$3", "$4"]))
                .bind::<Array<BigInt>, _>(devices)
                .bind::<Array<Text>, _>(ids)
                .bind::<Text, _>(to)
                .bind::<Text, _>(from)
                .load(conn)
                .await?
        }
        Conn::Sqlite(conn) => {
            diesel::sql_query(ack_statement(Pairs::SQLITE_SOURCE, ["?2", "?3"]))
                .bind::<Text, _>(pairs.json())
                .bind::<Text, _>(to)
                .bind::<Text, _>(from)
                .load(conn)
                .await?
        }
    };
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::sql::sqlite_plan;

    #[test]
    fn a_receipt_probes_the_device_and_id_index_once_per_pair_on_sqlite() {
        let plan = sqlite_plan(&ack_statement(Pairs::SQLITE_SOURCE, ["?2", "?3"]));
        assert!(
            plan.iter()
                .any(|step| step.contains("(device_id=? AND wa_id=?)")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.contains("SCAN messages")),
            "{plan:?}"
        );
    }
}

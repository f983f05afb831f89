//! Writing outbox rows: a campaign's whole outbox at its start, streamed chunk by chunk in one
//! transaction, and a sequence step's row inside the sequence's own transaction.

use chrono::NaiveDateTime;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::Conn;
use crate::broadcast::outbox::model::OutboxRow;
use crate::db::sql::json_rows;
use crate::db::{Db, DbError};
use crate::db_run;

/// Produces a campaign's outbox rows a chunk at a time, so a start never holds every row.
pub trait RowSource: Send {
    /// The next chunk of rows (`None` when there are no more).
    fn next_chunk(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<Vec<OutboxRow>>, DbError>> + Send;
}

/// Chunks already in memory (a test's rows).
impl<I: Iterator<Item = Vec<OutboxRow>> + Send> RowSource for I {
    async fn next_chunk(&mut self) -> Result<Option<Vec<OutboxRow>>, DbError> {
        Ok(self.next())
    }
}

/// Writes a campaign's outbox from `rows`, chunk by chunk, in ONE transaction: all of it or,
/// when anything fails (the source included), none of it. A (campaign, lead, step) already
/// present is left alone, so writing twice (a crash after the write) never doubles a message.
/// Returns the rows written.
///
/// The source reads (leads, opt-outs) on other pooled connections while this one holds the
/// transaction; its first statement is an INSERT, so SQLite takes its write lock at once.
pub async fn write(
    db: &Db,
    tenant_id: i64,
    campaign_id: i64,
    rows: &mut impl RowSource,
) -> Result<usize, DbError> {
    let now = chrono::Utc::now().naive_utc();
    db_run!(db, |conn| {
        conn.transaction::<_, DbError, _>(async |conn| {
            let mut written = 0;
            while let Some(chunk) = rows.next_chunk().await? {
                written += insert_rows(Conn::from(&mut *conn), tenant_id, campaign_id, &chunk, now)
                    .await?;
            }
            Ok(written)
        })
        .await
    })
}

/// PostgreSQL: a chunk of new outbox rows from one array per column (see [`insert_rows`]).
const INSERT_ARRAYS: &str = "INSERT INTO outbox (tenant_id, campaign_id, created_at, attempts, \
     lead_id, device_id, phone, body, message_id, status, error, step, image_sha256, attachment) \
     SELECT $1, $2, $3, 0, r.* FROM unnest($4::int8[], $5::int8[], $6::text[], $7::text[], \
     $8::text[], $9::text[], $10::text[], $11::int8[], $12::text[], $13::text[]) AS r \
     ON CONFLICT DO NOTHING";

/// SQLite: a chunk of new outbox rows from one JSON array (see [`insert_rows`]), in its order;
/// `WHERE true` keeps the upsert clause from being read as a join's.
const INSERT_JSON: &str = "INSERT INTO outbox (tenant_id, campaign_id, created_at, attempts, \
     lead_id, device_id, phone, body, message_id, status, error, step, image_sha256, attachment) \
     SELECT ?1, ?2, ?3, 0, json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
     json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]'), \
     json_extract(value, '$[5]'), json_extract(value, '$[6]'), json_extract(value, '$[7]'), \
     json_extract(value, '$[8]'), json_extract(value, '$[9]') FROM json_each(?4) WHERE true \
     ORDER BY key ON CONFLICT DO NOTHING";

/// Inserts rows on the caller's connection (inside its transaction), created at `now`; a
/// (campaign, lead, step) already present is left alone. Returns the rows inserted.
pub async fn insert_rows(
    conn: Conn<'_>,
    tenant_id: i64,
    campaign_id: i64,
    rows: &[OutboxRow],
    now: NaiveDateTime,
) -> Result<usize, DbError> {
    let mut written = 0;
    match conn {
        // One statement of fixed text per chunk, the rows as one JSON array: prepared once per
        // connection, nothing bound or formatted per row.
        Conn::Sqlite(conn) => {
            let values: Vec<_> = rows
                .iter()
                .map(|r| {
                    (
                        r.lead_id,
                        r.device_id,
                        &r.phone,
                        &r.body,
                        &r.message_id,
                        r.status.as_str(),
                        &r.error,
                        r.step,
                        &r.image_sha256,
                        &r.attachment,
                    )
                })
                .collect();
            written += diesel::sql_query(INSERT_JSON)
                .bind::<BigInt, _>(tenant_id)
                .bind::<BigInt, _>(campaign_id)
                .bind::<Timestamp, _>(now)
                .bind::<Text, _>(json_rows(values))
                .execute(conn)
                .await?;
        }
        // One statement of fixed text per chunk, the columns as arrays: PostgreSQL parses and
        // plans it once per chunk however many rows it carries, and nothing binds 14 values a row.
        Conn::Postgres(conn) => {
            written += diesel::sql_query(INSERT_ARRAYS)
                .bind::<BigInt, _>(tenant_id)
                .bind::<BigInt, _>(campaign_id)
                .bind::<Timestamp, _>(now)
                .bind::<Array<BigInt>, _>(column(rows, |r| r.lead_id))
                .bind::<Array<Nullable<BigInt>>, _>(column(rows, |r| r.device_id))
                .bind::<Array<Text>, _>(column(rows, |r| r.phone.as_str()))
                .bind::<Array<Text>, _>(column(rows, |r| r.body.as_str()))
                .bind::<Array<Text>, _>(column(rows, |r| r.message_id.as_str()))
                .bind::<Array<Text>, _>(column(rows, |r| r.status.as_str()))
                .bind::<Array<Nullable<Text>>, _>(column(rows, |r| r.error.as_deref()))
                .bind::<Array<BigInt>, _>(column(rows, |r| r.step))
                .bind::<Array<Nullable<Text>>, _>(column(rows, |r| r.image_sha256.as_deref()))
                .bind::<Array<Nullable<Text>>, _>(column(rows, |r| r.attachment.as_deref()))
                .execute(conn)
                .await?;
        }
    }
    Ok(written)
}

/// One column of `rows`, for an array bind.
fn column<'r, T>(rows: &'r [OutboxRow], value: impl Fn(&'r OutboxRow) -> T) -> Vec<T> {
    rows.iter().map(value).collect()
}

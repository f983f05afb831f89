//! All SQL about lead lists and leads. Every function is tenant-scoped: another tenant's ids
//! read as [`DbError::NotFound`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{NaiveDateTime, Utc};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text, Timestamp};
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::model::{Lead, LeadInput, LeadList, LeadPatch, NewLead};
use crate::db::schema::{lead_lists, leads};
use crate::db::sql::{json_rows, like_pattern, lower, one_of};
use crate::db::{Conn, Db, DbError};
use crate::{db_run, delete_found};

/// Filters of a lead search; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct LeadFilter {
    /// Only this list.
    pub list_id: Option<i64>,
    /// Substring of the name or phone (case-insensitive).
    pub search: Option<String>,
    /// Leads carrying this (normalized) tag.
    pub tag: Option<String>,
    /// Only this (normalized) status.
    pub status: Option<String>,
    /// Only this niche (case-insensitive).
    pub niche: Option<String>,
    /// Keyset cursor: only ids above this.
    pub after_id: Option<i64>,
}

/// What one committed import batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchCounts {
    /// New leads.
    pub inserted: u64,
    /// Leads that existed in the list and were updated.
    pub updated: u64,
    /// Rows whose phone an earlier batch of the same import already wrote (skipped).
    pub duplicates: u64,
}

/// Attempts of an import batch that lost a race with another writer of the same phone.
const BATCH_ATTEMPTS: usize = 3;

/// The tenant's lists by name, each with its lead count (kept on the list by triggers).
pub async fn list_lists(db: &Db, tenant_id: i64) -> Result<Vec<(LeadList, i64)>, DbError> {
    db_run!(db, |conn| {
        lead_lists::table
            .filter(lead_lists::tenant_id.eq(tenant_id))
            .order((lead_lists::name.asc(), lead_lists::id.asc()))
            .select((LeadList::as_select(), lead_lists::lead_count))
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// One list of the tenant with its lead count.
pub async fn get_list(db: &Db, tenant_id: i64, id: i64) -> Result<(LeadList, i64), DbError> {
    db_run!(db, |conn| {
        lead_lists::table
            .filter(lead_lists::tenant_id.eq(tenant_id))
            .filter(lead_lists::id.eq(id))
            .select((LeadList::as_select(), lead_lists::lead_count))
            .first(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Which of `ids` are lead lists of the tenant.
pub async fn tenant_list_ids(
    db: &Db,
    tenant_id: i64,
    ids: &[i64],
) -> Result<HashSet<i64>, DbError> {
    Ok(crate::ids_found!(db, ids, i64, |chunk| lead_lists::table
        .filter(lead_lists::tenant_id.eq(tenant_id))
        .filter(lead_lists::id.eq_any(chunk))
        .select(lead_lists::id)))
}

/// Creates a list; a name the tenant already uses is [`DbError::Conflict`].
pub async fn insert_list(db: &Db, tenant_id: i64, name: &str) -> Result<LeadList, DbError> {
    let now = Utc::now().naive_utc();
    db_run!(db, |conn| {
        diesel::insert_into(lead_lists::table)
            .values((
                lead_lists::tenant_id.eq(tenant_id),
                lead_lists::name.eq(name),
                lead_lists::created_at.eq(now),
                lead_lists::updated_at.eq(now),
            ))
            .returning(LeadList::as_returning())
            .get_result(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Renames a list.
pub async fn rename_list(
    db: &Db,
    tenant_id: i64,
    id: i64,
    name: &str,
) -> Result<LeadList, DbError> {
    let now = Utc::now().naive_utc();
    db_run!(db, |conn| {
        diesel::update(
            lead_lists::table
                .filter(lead_lists::tenant_id.eq(tenant_id))
                .filter(lead_lists::id.eq(id)),
        )
        .set((lead_lists::name.eq(name), lead_lists::updated_at.eq(now)))
        .returning(LeadList::as_returning())
        .get_result(conn)
        .await
        .map_err(DbError::from)
    })
}

/// Leads deleted per statement when a list goes.
const DELETE_CHUNK: i64 = 1_000;

/// Deletes a list and its leads: the leads first, [`DELETE_CHUNK`] per statement, so deleting
/// a list of 100,000 never holds SQLite's write lock (or PostgreSQL's row locks) for long and
/// the chat mirror keeps writing meanwhile.
pub async fn delete_list(db: &Db, tenant_id: i64, id: i64) -> Result<(), DbError> {
    while crate::delete_chunk!(
        db,
        leads,
        leads::list_id.eq(id).and(leads::tenant_id.eq(tenant_id)),
        leads::list_id,
        DELETE_CHUNK
    )? > 0
    {}
    delete_found!(
        db,
        lead_lists::table
            .filter(lead_lists::tenant_id.eq(tenant_id))
            .filter(lead_lists::id.eq(id))
    )
}

/// Leads matching `filter`, by id, at most `limit`.
pub async fn search_leads(
    db: &Db,
    tenant_id: i64,
    filter: &LeadFilter,
    limit: i64,
) -> Result<Vec<Lead>, DbError> {
    let term = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let search = term.map(|s| like_pattern(&s.to_lowercase()));
    let sqlite = matches!(db, Db::Sqlite(_));
    // On SQLite a term of three characters or more is looked up in the trigram index
    // (`leads_search`, a phrase: the term's trigrams in a row). On PostgreSQL the LIKE runs on
    // the indexed join of name and phone (`leads_search_trgm_idx`).
    let phrase = term
        .filter(|s| sqlite && s.chars().count() >= 3)
        .map(|s| format!("\"{}\"", s.replace('"', "\"\"")));
    let tag = filter.tag.as_ref().map(|t| like_pattern(&format!(",{t},")));
    let niche = filter.niche.as_ref().map(|n| n.trim().to_lowercase());
    db_run!(db, |conn| {
        let mut query = leads::table
            .filter(leads::tenant_id.eq(tenant_id))
            .into_boxed();
        if let Some(list_id) = filter.list_id {
            query = query.filter(leads::list_id.eq(list_id));
        }
        if let Some(phrase) = &phrase {
            query = query.filter(
                sql::<Bool>(
                    "leads.id IN (SELECT rowid FROM leads_search WHERE leads_search MATCH ",
                )
                .bind::<Text, _>(phrase.clone())
                .sql(")"),
            );
        } else if let (Some(pattern), false) = (&search, sqlite) {
            query = query.filter(
                sql::<Bool>("(lower(leads.name) || E'\\x01' || leads.phone) LIKE ")
                    .bind::<Text, _>(pattern.clone())
                    .sql(" ESCAPE '\\'"),
            );
        } else if let Some(pattern) = &search {
            query = query.filter(
                lower(leads::name)
                    .like(pattern.clone())
                    .escape('\\')
                    .or(leads::phone.like(pattern.clone()).escape('\\')),
            );
        }
        if let Some(pattern) = &tag {
            query = query.filter(leads::tags.like(pattern.clone()).escape('\\'));
        }
        if let Some(status) = &filter.status {
            query = query.filter(leads::status.eq(status.clone()));
        }
        if let Some(niche) = &niche {
            query = query.filter(lower(leads::niche.assume_not_null()).eq(niche.clone()));
        }
        if let Some(after) = filter.after_id {
            query = query.filter(leads::id.gt(after));
        }
        query
            .order(leads::id.asc())
            .limit(limit)
            .select(Lead::as_select())
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// One lead of the tenant.
pub async fn get_lead(db: &Db, tenant_id: i64, id: i64) -> Result<Lead, DbError> {
    db_run!(db, |conn| {
        leads::table
            .filter(leads::tenant_id.eq(tenant_id))
            .filter(leads::id.eq(id))
            .select(Lead::as_select())
            .first(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Inserts a lead; its phone already in the list is [`DbError::Conflict`].
pub async fn insert_lead(db: &Db, row: &NewLead) -> Result<Lead, DbError> {
    db_run!(db, |conn| {
        diesel::insert_into(leads::table)
            .values(row)
            .returning(Lead::as_returning())
            .get_result(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Changes a lead of the tenant.
pub async fn update_lead(
    db: &Db,
    tenant_id: i64,
    id: i64,
    patch: &LeadPatch,
) -> Result<Lead, DbError> {
    db_run!(db, |conn| {
        diesel::update(
            leads::table
                .filter(leads::tenant_id.eq(tenant_id))
                .filter(leads::id.eq(id)),
        )
        .set(patch)
        .returning(Lead::as_returning())
        .get_result(conn)
        .await
        .map_err(DbError::from)
    })
}

/// Deletes a lead of the tenant.
pub async fn delete_lead(db: &Db, tenant_id: i64, id: i64) -> Result<(), DbError> {
    delete_found!(
        db,
        leads::table
            .filter(leads::tenant_id.eq(tenant_id))
            .filter(leads::id.eq(id))
    )
}

/// Writes one import batch in one transaction: leads new to the list are inserted in one
/// statement, leads already in it are updated with the row's non-empty values
/// ([`LeadInput::merge_into`]). The phones of `rows` must be distinct. A list deleted meanwhile
/// is [`DbError::NotFound`].
///
/// `stamp` is the import's start (whole microseconds): the leads it inserts get it as
/// `created_at`, the leads it updates as `updated_at`. A lead of the list already carrying it
/// was written by an earlier batch of the same import, so the row repeats a phone of the file
/// and is counted in `duplicates` instead (the first row wins): the file's phones are never
/// held in memory, whatever its size.
///
/// Each batch first locks the list's row (SQLite: the database), so imports into one list never
/// race each other; a lead added through the API between the read and the insert makes the
/// batch roll back and run again, now updating that lead.
pub async fn write_import_batch(
    db: &Db,
    tenant_id: i64,
    list_id: i64,
    stamp: NaiveDateTime,
    rows: Arc<Vec<LeadInput>>,
) -> Result<BatchCounts, DbError> {
    let mut attempt = 1;
    loop {
        match try_import_batch(db, tenant_id, list_id, stamp, rows.clone()).await {
            Err(DbError::Conflict(what)) if attempt < BATCH_ATTEMPTS => {
                tracing::debug!(list_id, attempt, conflict = %what, "import batch raced a writer, retrying");
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

/// Inserts an import batch's new leads, all of `tenant_id`'s list `list_id` and written at
/// `now`. SQLite reads them from one JSON array ([`json_rows`]) in one statement under fixed
/// SQL text, so the connection prepares it once (a multi-row `VALUES` list is a new statement of
/// ten binds a row for every batch, and each timestamp is formatted per row); PostgreSQL takes
/// diesel's multi-row insert, [`PG_INSERT_ROWS`] rows a statement.
async fn insert_new_leads(
    conn: Conn<'_>,
    tenant_id: i64,
    list_id: i64,
    now: NaiveDateTime,
    rows: Vec<NewLead>,
) -> Result<usize, DbError> {
    match conn {
        Conn::Sqlite(conn) => {
            let columns: Vec<_> = rows
                .iter()
                .map(|r| (&r.name, &r.phone, &r.niche, &r.tags, &r.status, &r.fields))
                .collect();
            diesel::sql_query(INSERT_LEADS_FROM_JSON)
                .bind::<BigInt, _>(tenant_id)
                .bind::<BigInt, _>(list_id)
                .bind::<Timestamp, _>(now)
                .bind::<Text, _>(json_rows(columns))
                .execute(conn)
                .await
                .map_err(DbError::from)
        }
        Conn::Postgres(conn) => {
            let mut inserted = 0;
            for chunk in rows.chunks(PG_INSERT_ROWS) {
                inserted += diesel::insert_into(leads::table)
                    .values(chunk)
                    .execute(conn)
                    .await?;
            }
            Ok(inserted)
        }
    }
}

/// New leads in one PostgreSQL INSERT: 12 binds a row, far below its 65,535 binds a statement
/// whatever the import's batch size.
const PG_INSERT_ROWS: usize = 2000;

/// SQLite's insert of new leads of one list and time: `?4` is a JSON array of
/// `[name, phone, niche, tags, status, fields]`, inserted in its order.
const INSERT_LEADS_FROM_JSON: &str = "INSERT INTO leads \
    (tenant_id, list_id, name, phone, niche, tags, status, fields, created_at, updated_at) \
    SELECT ?1, ?2, json_extract(value, '$[0]'), json_extract(value, '$[1]'), \
    json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]'), \
    json_extract(value, '$[5]'), ?3, ?3 FROM json_each(?4) ORDER BY key";

/// Refreshes the planner's statistics of `leads` (the same statement on both backends).
///
/// Large imports call it as the table grows: without statistics PostgreSQL takes a batch of
/// phones for an unselective condition and scans the whole list for every batch of an import.
pub async fn analyze_leads(db: &Db) -> Result<(), DbError> {
    db_run!(db, |conn| {
        diesel::sql_query("ANALYZE leads")
            .execute(conn)
            .await
            .map(|_| ())
            .map_err(DbError::from)
    })
}

/// One attempt of [`write_import_batch`]; on SQLite the whole batch runs on one blocking
/// thread.
async fn try_import_batch(
    db: &Db,
    tenant_id: i64,
    list_id: i64,
    stamp: NaiveDateTime,
    rows: Arc<Vec<LeadInput>>,
) -> Result<BatchCounts, DbError> {
    let now = stamp;
    crate::db_batch!(db, move |conn| {
        let phones: Vec<&str> = rows.iter().map(|r| r.phone.as_str()).collect();
        conn.transaction::<_, DbError, _>(async |conn| {
            // The first statement writes (SQLite takes its write lock now) and proves the list
            // is still the tenant's.
            let touched = diesel::update(
                lead_lists::table
                    .filter(lead_lists::tenant_id.eq(tenant_id))
                    .filter(lead_lists::id.eq(list_id)),
            )
            .set(lead_lists::updated_at.eq(now))
            .execute(conn)
            .await?;
            DbError::found(touched)?;
            // Boxed: planned with this batch's phones, never a generic plan kept from the
            // time the list was empty.
            let existing: Vec<Lead> = leads::table
                .filter(leads::list_id.eq(list_id))
                .filter(one_of(leads::phone, phones.clone()))
                .select(Lead::as_select())
                .into_boxed()
                .load(conn)
                .await?;
            let existing: HashMap<&str, &Lead> =
                existing.iter().map(|l| (l.phone.as_str(), l)).collect();
            let mut counts = BatchCounts::default();
            let mut fresh: Vec<NewLead> = Vec::new();
            for row in rows.iter() {
                match existing.get(row.phone.as_str()) {
                    Some(lead) if lead.created_at == stamp || lead.updated_at == stamp => {
                        counts.duplicates += 1;
                    }
                    Some(lead) => {
                        diesel::update(leads::table.find(lead.id))
                            .set(&row.merge_into(lead, now))
                            .execute(conn)
                            .await?;
                        counts.updated += 1;
                    }
                    None => fresh.push(row.clone().into_new(tenant_id, list_id, now)),
                }
            }
            if !fresh.is_empty() {
                // A conflict here rolls the batch back for a retry.
                let inserted =
                    insert_new_leads(Conn::from(&mut *conn), tenant_id, list_id, now, fresh)
                        .await?;
                counts.inserted = inserted as u64;
            }
            Ok(counts)
        })
        .await
    })
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::RunQueryDsl;

    use crate::db::sql::{migrated_sqlite, sqlite_plan, Count};

    fn count(conn: &mut diesel::SqliteConnection, sql: &str) -> i64 {
        diesel::sql_query(sql).get_result::<Count>(conn).unwrap().n
    }

    #[test]
    fn the_sqlite_search_index_is_lean_and_follows_every_change_of_a_lead() {
        let (_dir, mut conn) = migrated_sqlite();
        // Lean: no per-row column sizes, merged when 8 segments of a level exist.
        assert_eq!(
            count(
                &mut conn,
                "SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'leads_search_docsize'"
            ),
            0
        );
        assert_eq!(
            count(
                &mut conn,
                "SELECT v AS n FROM leads_search_config WHERE k = 'automerge'"
            ),
            8
        );
        conn.batch_execute(
            "INSERT INTO tenants (name, time_zone, created_at, updated_at) \
             VALUES ('t', 'UTC', '2026-12-07', '2026-12-07'); \
             INSERT INTO lead_lists (tenant_id, name, created_at, updated_at) \
             VALUES (1, 'l', '2026-12-07', '2026-12-07'); \
             INSERT INTO leads (tenant_id, list_id, name, phone, tags, status, fields, \
             created_at, updated_at) VALUES \
             (1, 1, 'Aminah', '60123456701', ',', 'new', '{}', '2026-12-07', '2026-12-07'), \
             (1, 1, 'Ravi', '60123456702', ',', 'new', '{}', '2026-12-07', '2026-12-07'), \
             (1, 1, 'Mei Ling', '60123456703', ',', 'new', '{}', '2026-12-07', '2026-12-07'); \
             UPDATE leads SET name = 'Siti' WHERE name = 'Aminah'; \
             DELETE FROM leads WHERE name = 'Ravi';",
        )
        .unwrap();
        let hits = |conn: &mut diesel::SqliteConnection, term: &str| {
            count(
                conn,
                &format!(
                    "SELECT COUNT(*) AS n FROM leads_search WHERE leads_search MATCH '\"{term}\"'"
                ),
            )
        };
        assert_eq!(hits(&mut conn, "sit"), 1, "the new name is found");
        assert_eq!(hits(&mut conn, "min"), 0, "the old name is gone");
        assert_eq!(hits(&mut conn, "ravi"), 0, "a deleted lead is gone");
        assert_eq!(hits(&mut conn, "g 6012"), 0, "columns are indexed apart");
        assert_eq!(hits(&mut conn, "ei lin"), 1);
        assert_eq!(hits(&mut conn, "456703"), 1);
        // FTS5 compares the index with the rows of `leads`; any drift is an error.
        conn.batch_execute("INSERT INTO leads_search (leads_search) VALUES ('integrity-check')")
            .unwrap();
    }

    #[test]
    fn an_import_batch_probes_the_lists_phones_by_index_on_sqlite() {
        // The text `one_of` writes on SQLite for the batch's lookup.
        let plan = sqlite_plan(
            "SELECT id FROM leads WHERE list_id = ?1 \
             AND phone IN (SELECT value FROM json_each(?2))",
        );
        assert!(
            plan.iter()
                .any(|step| step.starts_with("SEARCH leads") && step.contains("phone=?")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN leads")),
            "{plan:?}"
        );
    }
}

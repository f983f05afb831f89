//! All SQL of outbound webhooks: endpoints, the delivery queue (claimed under a lease like the
//! outbox) and the delivery log it doubles as. Every query a tenant can reach is scoped by
//! `tenant_id`.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::model::{Attempt, Claimed, Delivery, DeliveryStatus, Endpoint, EndpointFields};
use crate::db::schema::{webhook_endpoints, webhook_queue};
use crate::db::{Db, DbError};
use crate::db_run;

/// Rows one INSERT writes at most on PostgreSQL (9 parameters a row, far below its limit).
const INSERT_CHUNK: usize = 500;

/// The tenant's endpoints, oldest first.
pub async fn list_endpoints(db: &Db, tenant_id: i64) -> Result<Vec<Endpoint>, DbError> {
    db_run!(db, |conn| {
        webhook_endpoints::table
            .filter(webhook_endpoints::tenant_id.eq(tenant_id))
            .order(webhook_endpoints::id)
            .select(Endpoint::as_select())
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Every active endpoint of every tenant (the dispatcher's routing table).
pub async fn active_endpoints(db: &Db) -> Result<Vec<Endpoint>, DbError> {
    db_run!(db, |conn| {
        webhook_endpoints::table
            .filter(webhook_endpoints::active.eq(true))
            .select(Endpoint::as_select())
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// One endpoint of the tenant.
pub async fn get_endpoint(db: &Db, tenant_id: i64, id: i64) -> Result<Endpoint, DbError> {
    db_run!(db, |conn| {
        webhook_endpoints::table
            .filter(webhook_endpoints::tenant_id.eq(tenant_id))
            .filter(webhook_endpoints::id.eq(id))
            .select(Endpoint::as_select())
            .first(conn)
            .await
            .map_err(DbError::from)
    })
}

/// How many endpoints the tenant has.
pub async fn count_endpoints(db: &Db, tenant_id: i64) -> Result<i64, DbError> {
    db_run!(db, |conn| {
        webhook_endpoints::table
            .filter(webhook_endpoints::tenant_id.eq(tenant_id))
            .count()
            .get_result(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Creates an endpoint with its signing secret.
pub async fn insert_endpoint(
    db: &Db,
    tenant_id: i64,
    fields: &EndpointFields,
    secret: &str,
    now: NaiveDateTime,
) -> Result<Endpoint, DbError> {
    db_run!(db, |conn| {
        diesel::insert_into(webhook_endpoints::table)
            .values((
                fields,
                webhook_endpoints::tenant_id.eq(tenant_id),
                webhook_endpoints::secret.eq(secret),
                webhook_endpoints::created_at.eq(now),
                webhook_endpoints::updated_at.eq(now),
            ))
            .returning(Endpoint::as_returning())
            .get_result(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Replaces an endpoint's fields. Switching it on clears what switched it off.
pub async fn update_endpoint(
    db: &Db,
    tenant_id: i64,
    id: i64,
    fields: &EndpointFields,
    now: NaiveDateTime,
) -> Result<Endpoint, DbError> {
    let target = webhook_endpoints::table
        .filter(webhook_endpoints::tenant_id.eq(tenant_id))
        .filter(webhook_endpoints::id.eq(id));
    db_run!(db, |conn| {
        conn.transaction::<_, DbError, _>(async |conn| {
            let before: Endpoint = target.select(Endpoint::as_select()).first(conn).await?;
            let reset = fields.active && !before.active;
            diesel::update(target)
                .set((fields, webhook_endpoints::updated_at.eq(now)))
                .execute(conn)
                .await?;
            if reset {
                diesel::update(target)
                    .set((
                        webhook_endpoints::failing_since.eq(None::<NaiveDateTime>),
                        webhook_endpoints::disabled_reason.eq(None::<String>),
                    ))
                    .execute(conn)
                    .await?;
            }
            Ok(target.select(Endpoint::as_select()).first(conn).await?)
        })
        .await
    })
}

/// Deletes an endpoint and its deliveries.
pub async fn delete_endpoint(db: &Db, tenant_id: i64, id: i64) -> Result<(), DbError> {
    crate::delete_found!(
        db,
        webhook_endpoints::table
            .filter(webhook_endpoints::tenant_id.eq(tenant_id))
            .filter(webhook_endpoints::id.eq(id))
    )
}

/// Gives an endpoint a new signing secret.
pub async fn set_secret(
    db: &Db,
    tenant_id: i64,
    id: i64,
    secret: &str,
    now: NaiveDateTime,
) -> Result<Endpoint, DbError> {
    db_run!(db, |conn| {
        diesel::update(
            webhook_endpoints::table
                .filter(webhook_endpoints::tenant_id.eq(tenant_id))
                .filter(webhook_endpoints::id.eq(id)),
        )
        .set((
            webhook_endpoints::secret.eq(secret),
            webhook_endpoints::updated_at.eq(now),
        ))
        .returning(Endpoint::as_returning())
        .get_result(conn)
        .await
        .map_err(DbError::from)
    })
}

/// Records since when an endpoint fails (`None`: it answers again).
pub async fn set_failing_since(
    db: &Db,
    id: i64,
    since: Option<NaiveDateTime>,
) -> Result<(), DbError> {
    db_run!(db, |conn| {
        diesel::update(webhook_endpoints::table.find(id))
            .set(webhook_endpoints::failing_since.eq(since))
            .execute(conn)
            .await
            .map(|_| ())
            .map_err(DbError::from)
    })
}

/// Switches an endpoint off, saying why; its waiting deliveries stay (replayable once it is
/// switched on again).
pub async fn disable_endpoint(
    db: &Db,
    id: i64,
    reason: &str,
    now: NaiveDateTime,
) -> Result<(), DbError> {
    db_run!(db, |conn| {
        diesel::update(webhook_endpoints::table.find(id))
            .set((
                webhook_endpoints::active.eq(false),
                webhook_endpoints::disabled_reason.eq(reason),
                webhook_endpoints::updated_at.eq(now),
            ))
            .execute(conn)
            .await
            .map(|_| ())
            .map_err(DbError::from)
    })
}

/// A delivery to queue.
#[derive(Debug, Clone, PartialEq, Insertable)]
#[diesel(table_name = webhook_queue)]
pub struct NewDelivery {
    /// Tenant.
    pub tenant_id: i64,
    /// Endpoint.
    pub endpoint_id: i64,
    /// Event id.
    pub event_id: String,
    /// Event type.
    pub event_type: String,
    /// Body.
    pub payload: String,
    /// `pending`.
    pub status: &'static str,
    /// 0.
    pub attempts: i64,
    /// Due now.
    pub next_attempt_at: NaiveDateTime,
    /// Queued now.
    pub created_at: NaiveDateTime,
}

/// Queues deliveries, several rows per statement, in one transaction; answers how many.
pub async fn enqueue(db: &Db, rows: Vec<NewDelivery>) -> Result<usize, DbError> {
    if rows.is_empty() {
        return Ok(0);
    }
    match db {
        // diesel-async has no multi-row INSERT for SQLite; one prepared statement per row in one
        // transaction on one blocking thread is fast there.
        Db::Sqlite(_) => crate::db_batch!(db, move |conn| {
            conn.transaction::<_, DbError, _>(async |conn| {
                let mut written = 0;
                for row in &rows {
                    written += diesel::insert_into(webhook_queue::table)
                        .values(row)
                        .execute(conn)
                        .await?;
                }
                Ok(written)
            })
            .await
        }),
        Db::Postgres(pool) => {
            let mut conn = pool.get().await.map_err(DbError::from)?;
            conn.transaction::<_, DbError, _>(async |conn| {
                let mut written = 0;
                for chunk in rows.chunks(INSERT_CHUNK) {
                    written += diesel::insert_into(webhook_queue::table)
                        .values(chunk)
                        .execute(conn)
                        .await?;
                }
                Ok(written)
            })
            .await
        }
    }
}

/// Queues one delivery; answers its id.
pub async fn enqueue_one(db: &Db, row: NewDelivery) -> Result<i64, DbError> {
    db_run!(db, |conn| {
        diesel::insert_into(webhook_queue::table)
            .values(&row)
            .returning(webhook_queue::id)
            .get_result(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Claims up to `limit` due deliveries of an endpoint (pending and due, or leased by a sender
/// that died) for `lease_until`, oldest first, counting the attempt.
pub async fn claim(
    db: &Db,
    endpoint_id: i64,
    limit: i64,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> Result<Vec<Claimed>, DbError> {
    macro_rules! due {
        () => {
            webhook_queue::table
                .filter(webhook_queue::endpoint_id.eq(endpoint_id))
                .filter(
                    webhook_queue::status
                        .eq(DeliveryStatus::Pending.as_str())
                        .and(webhook_queue::next_attempt_at.le(now))
                        .or(webhook_queue::status
                            .eq(DeliveryStatus::Delivering.as_str())
                            .and(webhook_queue::lease_until.lt(now))),
                )
        };
    }
    macro_rules! take {
        ($conn:expr, $ids:expr) => {
            diesel::update(due!().filter(webhook_queue::id.eq_any($ids)))
                .set((
                    webhook_queue::status.eq(DeliveryStatus::Delivering.as_str()),
                    webhook_queue::attempts.eq(webhook_queue::attempts + 1),
                    webhook_queue::lease_until.eq(Some(lease_until)),
                ))
                .returning((
                    webhook_queue::id,
                    webhook_queue::endpoint_id,
                    webhook_queue::event_id,
                    webhook_queue::event_type,
                    webhook_queue::payload,
                    webhook_queue::attempts,
                    webhook_queue::created_at,
                ))
                .load::<Claimed>($conn)
                .await
        };
    }
    let mut claimed = match db {
        // One writer at a time on SQLite: read the ids, then take those still due.
        Db::Sqlite(pool) => {
            let mut conn = pool.get().await.map_err(DbError::from)?;
            let ids: Vec<i64> = due!()
                .order(webhook_queue::id)
                .limit(limit)
                .select(webhook_queue::id)
                .load(&mut conn)
                .await?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            take!(&mut conn, &ids)?
        }
        // Several daemons may claim at once: lock the rows, skipping those another holds.
        Db::Postgres(pool) => {
            let mut conn = pool.get().await.map_err(DbError::from)?;
            conn.transaction::<_, DbError, _>(async |conn| {
                let ids: Vec<i64> = due!()
                    .order(webhook_queue::id)
                    .limit(limit)
                    .select(webhook_queue::id)
                    .for_update()
                    .skip_locked()
                    .load(conn)
                    .await?;
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                Ok(take!(conn, &ids)?)
            })
            .await?
        }
    };
    claimed.sort_by_key(|c| c.id);
    Ok(claimed)
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Queue row.
    pub id: i64,
    /// The attempt, for the log.
    pub attempt: Attempt,
    /// The row's new state.
    pub next: NextState,
}

/// A delivery's state after an attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NextState {
    /// Delivered at this time.
    Delivered(NaiveDateTime),
    /// Try again at this time.
    RetryAt(NaiveDateTime),
    /// Given up.
    Dead,
}

/// Writes the outcomes of finished attempts, in one transaction.
pub async fn record(db: &Db, outcomes: Vec<Outcome>) -> Result<(), DbError> {
    if outcomes.is_empty() {
        return Ok(());
    }
    crate::db_batch!(db, move |conn| {
        conn.transaction::<_, DbError, _>(async |conn| {
            for outcome in &outcomes {
                let (status, delivered_at, next_at) = match outcome.next {
                    NextState::Delivered(at) => (DeliveryStatus::Delivered, Some(at), None),
                    NextState::RetryAt(at) => (DeliveryStatus::Pending, None, Some(at)),
                    NextState::Dead => (DeliveryStatus::Dead, None, None),
                };
                let a = &outcome.attempt;
                let row = webhook_queue::table.find(outcome.id);
                diesel::update(row)
                    .set((
                        webhook_queue::status.eq(status.as_str()),
                        webhook_queue::lease_until.eq(None::<NaiveDateTime>),
                        webhook_queue::delivered_at.eq(delivered_at),
                        webhook_queue::response_status.eq(a.response_status),
                        webhook_queue::response_body.eq(&a.response_body),
                        webhook_queue::latency_ms.eq(a.latency_ms),
                        webhook_queue::error.eq(&a.error),
                    ))
                    .execute(conn)
                    .await?;
                if let Some(at) = next_at {
                    diesel::update(row)
                        .set(webhook_queue::next_attempt_at.eq(at))
                        .execute(conn)
                        .await?;
                }
            }
            Ok(())
        })
        .await
    })
}

/// Endpoints with a delivery due at `now` (pending and due, or leased by a sender that died).
pub async fn due_endpoints(db: &Db, now: NaiveDateTime) -> Result<Vec<i64>, DbError> {
    let pending = webhook_queue::status
        .eq(DeliveryStatus::Pending.as_str())
        .and(webhook_queue::next_attempt_at.le(now));
    let orphaned = webhook_queue::status
        .eq(DeliveryStatus::Delivering.as_str())
        .and(webhook_queue::lease_until.lt(now));
    db_run!(db, |conn| {
        webhook_queue::table
            .filter(pending.or(orphaned))
            .select(webhook_queue::endpoint_id)
            .distinct()
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Filters of the delivery log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    /// One endpoint.
    pub endpoint_id: Option<i64>,
    /// One status.
    pub status: Option<DeliveryStatus>,
    /// One event type.
    pub event_type: Option<String>,
    /// One event.
    pub event_id: Option<String>,
    /// Entries older than this id (keyset paging, newest first).
    pub before: Option<i64>,
}

/// A page of the tenant's delivery log, newest first.
pub async fn list_deliveries(
    db: &Db,
    tenant_id: i64,
    filter: &LogFilter,
    limit: i64,
) -> Result<Vec<Delivery>, DbError> {
    db_run!(db, |conn| {
        let mut query = webhook_queue::table
            .filter(webhook_queue::tenant_id.eq(tenant_id))
            .into_boxed();
        if let Some(endpoint_id) = filter.endpoint_id {
            query = query.filter(webhook_queue::endpoint_id.eq(endpoint_id));
        }
        if let Some(status) = filter.status {
            query = query.filter(webhook_queue::status.eq(status.as_str()));
        }
        if let Some(kind) = &filter.event_type {
            query = query.filter(webhook_queue::event_type.eq(kind));
        }
        if let Some(event_id) = &filter.event_id {
            query = query.filter(webhook_queue::event_id.eq(event_id));
        }
        if let Some(before) = filter.before {
            query = query.filter(webhook_queue::id.lt(before));
        }
        query
            .order(webhook_queue::id.desc())
            .limit(limit)
            .select(Delivery::as_select())
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// One delivery of the tenant.
pub async fn get_delivery(db: &Db, tenant_id: i64, id: i64) -> Result<Delivery, DbError> {
    db_run!(db, |conn| {
        webhook_queue::table
            .filter(webhook_queue::tenant_id.eq(tenant_id))
            .filter(webhook_queue::id.eq(id))
            .select(Delivery::as_select())
            .first(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Queues a delivery again, due now (the same event id: a receiver that already has it
/// dedupes it). A delivery being sent right now is left alone ([`DbError::Conflict`]).
pub async fn replay(
    db: &Db,
    tenant_id: i64,
    id: i64,
    now: NaiveDateTime,
) -> Result<Delivery, DbError> {
    let row = get_delivery(db, tenant_id, id).await?;
    if row.status == DeliveryStatus::Delivering.as_str() {
        return Err(DbError::Conflict(
            "the delivery is being sent right now".into(),
        ));
    }
    db_run!(db, |conn| {
        diesel::update(
            webhook_queue::table
                .filter(webhook_queue::tenant_id.eq(tenant_id))
                .filter(webhook_queue::id.eq(id)),
        )
        .set((
            webhook_queue::status.eq(DeliveryStatus::Pending.as_str()),
            webhook_queue::next_attempt_at.eq(now),
            // The retry window starts again, or an old event would be given up at once.
            webhook_queue::created_at.eq(now),
            webhook_queue::lease_until.eq(None::<NaiveDateTime>),
        ))
        .returning(Delivery::as_returning())
        .get_result(conn)
        .await
        .map_err(DbError::from)
    })
}

/// Deletes up to `limit` finished deliveries (delivered or given up) queued before `cutoff`;
/// answers how many went.
pub async fn delete_finished_before(
    db: &Db,
    cutoff: NaiveDateTime,
    limit: i64,
) -> Result<usize, DbError> {
    let finished = [
        DeliveryStatus::Delivered.as_str(),
        DeliveryStatus::Dead.as_str(),
    ];
    crate::delete_chunk!(
        db,
        webhook_queue,
        webhook_queue::created_at
            .lt(cutoff)
            .and(webhook_queue::status.eq_any(finished)),
        webhook_queue::id,
        limit
    )
}

/// Hands claimed deliveries that were never attempted back to the queue, due now (a stopping
/// daemon's prefetched rows), so another daemon or the next start sends them without waiting
/// for their lease.
pub async fn release(db: &Db, ids: Vec<i64>, now: NaiveDateTime) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    db_run!(db, |conn| {
        diesel::update(
            webhook_queue::table
                .filter(webhook_queue::id.eq_any(&ids))
                .filter(webhook_queue::status.eq(DeliveryStatus::Delivering.as_str())),
        )
        .set((
            webhook_queue::status.eq(DeliveryStatus::Pending.as_str()),
            webhook_queue::attempts.eq(webhook_queue::attempts - 1),
            webhook_queue::lease_until.eq(None::<NaiveDateTime>),
            webhook_queue::next_attempt_at.eq(now),
        ))
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(DbError::from)
    })
}

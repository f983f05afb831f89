//! The audit log: who did what, when, from where. Rows are written next to the action (logins,
//! failed logins, token and team changes, device deletions) and never hold secrets.

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::schema::audit_log;
use crate::db::{Db, DbError};
use crate::db_run;

/// One audit entry to write.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry<'a> {
    /// Tenant concerned, if any.
    pub tenant_id: Option<i64>,
    /// Acting user, if known.
    pub actor_user_id: Option<i64>,
    /// What happened, dotted: `auth.login`, `auth.login_failed`, `token.create`, …
    pub action: &'a str,
    /// What it happened to, e.g. `user:12`.
    pub target: Option<String>,
    /// Extra JSON detail (no secrets).
    pub detail: Option<serde_json::Value>,
    /// Client address.
    pub ip: Option<String>,
}

/// Writes an entry. Failures are logged, not returned: the audited action already happened.
pub async fn record(db: &Db, entry: AuditEntry<'_>) {
    if let Err(err) = insert(db, &entry).await {
        tracing::error!(error = %err, action = entry.action, "cannot write audit entry");
    }
}

/// Records `action` on `target` by the calling user, from the request's client address.
pub async fn by_caller(
    db: &Db,
    caller: &crate::auth::Caller,
    req: &actix_web::HttpRequest,
    action: &str,
    target: String,
) {
    record(
        db,
        AuditEntry {
            tenant_id: Some(caller.tenant_id),
            actor_user_id: Some(caller.user.id),
            action,
            target: Some(target),
            ip: req.peer_addr().map(|a| a.ip().to_string()),
            ..Default::default()
        },
    )
    .await;
}

/// Inserts the row.
async fn insert(db: &Db, entry: &AuditEntry<'_>) -> Result<(), DbError> {
    let row = (
        audit_log::tenant_id.eq(entry.tenant_id),
        audit_log::actor_user_id.eq(entry.actor_user_id),
        audit_log::action.eq(entry.action),
        audit_log::target.eq(entry.target.clone()),
        audit_log::detail.eq(entry.detail.as_ref().map(|d| d.to_string())),
        audit_log::ip.eq(entry.ip.clone()),
        audit_log::created_at.eq(Utc::now().naive_utc()),
    );
    db_run!(db, |conn| {
        diesel::insert_into(audit_log::table)
            .values(row.clone())
            .execute(conn)
            .await
            .map(|_| ())
            .map_err(DbError::from)
    })
}

/// The actions recorded for a tenant, newest first (tests and the admin view read these).
pub async fn recent_actions(db: &Db, tenant_id: i64, limit: i64) -> Result<Vec<String>, DbError> {
    db_run!(db, |conn| {
        audit_log::table
            .filter(audit_log::tenant_id.eq(tenant_id))
            .order(audit_log::id.desc())
            .limit(limit)
            .select(audit_log::action)
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

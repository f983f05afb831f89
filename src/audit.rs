//! The audit log: who did what, when, from where. Rows are written next to the action (logins,
//! failed logins, token and team changes, device deletions) and never hold secrets.
//!
//! This module owns the `audit_log` table. HTTP handlers write through `web::audit::Audit`, which
//! fills tenant, actor and address from the request and calls [`record`].

use std::fmt;

use chrono::{NaiveDateTime, Utc};
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
    /// What it happened to, stored as e.g. `user:12`.
    pub target: Option<Target>,
    /// Extra JSON detail (no secrets).
    pub detail: Option<serde_json::Value>,
    /// Client address.
    pub ip: Option<String>,
}

/// What an audited action happened to; stored as `<kind>:<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `user:<id>`.
    User(i64),
    /// `tenant:<id>`.
    Tenant(i64),
    /// `token:<id>`.
    Token(i64),
    /// `device:<id>`.
    Device(i64),
    /// `campaign:<id>`.
    Campaign(i64),
    /// `sequence:<id>`.
    Sequence(i64),
    /// `enrollment:<id>`.
    Enrollment(i64),
    /// `lead_list:<id>`.
    LeadList(i64),
    /// `lead:<id>`.
    Lead(i64),
    /// `phone:<E.164 digits>`.
    Phone(String),
    /// `email:<address>` (a failed sign-in names the account tried).
    Email(String),
    /// `webhook_endpoint:<id>`.
    WebhookEndpoint(i64),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::User(id) => write!(f, "user:{id}"),
            Target::Tenant(id) => write!(f, "tenant:{id}"),
            Target::Token(id) => write!(f, "token:{id}"),
            Target::Device(id) => write!(f, "device:{id}"),
            Target::Campaign(id) => write!(f, "campaign:{id}"),
            Target::Sequence(id) => write!(f, "sequence:{id}"),
            Target::Enrollment(id) => write!(f, "enrollment:{id}"),
            Target::LeadList(id) => write!(f, "lead_list:{id}"),
            Target::Lead(id) => write!(f, "lead:{id}"),
            Target::Phone(phone) => write!(f, "phone:{phone}"),
            Target::Email(email) => write!(f, "email:{email}"),
            Target::WebhookEndpoint(id) => write!(f, "webhook_endpoint:{id}"),
        }
    }
}

/// Writes an entry. Failures are logged, not returned: the audited action already happened.
pub async fn record(db: &Db, entry: AuditEntry<'_>) {
    if let Err(err) = insert(db, &entry).await {
        tracing::error!(error = %err, action = entry.action, "cannot write audit entry");
    }
}

/// Inserts the row.
async fn insert(db: &Db, entry: &AuditEntry<'_>) -> Result<(), DbError> {
    let row = (
        audit_log::tenant_id.eq(entry.tenant_id),
        audit_log::actor_user_id.eq(entry.actor_user_id),
        audit_log::action.eq(entry.action),
        audit_log::target.eq(entry.target.as_ref().map(Target::to_string)),
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

/// Deletes up to `limit` entries written before `cutoff`, oldest first (retention). Answers
/// how many went.
pub async fn delete_before(db: &Db, cutoff: NaiveDateTime, limit: i64) -> Result<usize, DbError> {
    crate::delete_chunk!(
        db,
        audit_log,
        audit_log::created_at.lt(cutoff),
        audit_log::created_at,
        limit
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_stored_as_kind_and_id() {
        let cases = [
            (Target::User(1), "user:1"),
            (Target::Tenant(2), "tenant:2"),
            (Target::Token(3), "token:3"),
            (Target::Device(4), "device:4"),
            (Target::Campaign(5), "campaign:5"),
            (Target::Sequence(6), "sequence:6"),
            (Target::Enrollment(7), "enrollment:7"),
            (Target::LeadList(8), "lead_list:8"),
            (Target::Lead(9), "lead:9"),
            (Target::Phone("60123456789".into()), "phone:60123456789"),
            (Target::Email("a@b.c".into()), "email:a@b.c"),
        ];
        for (target, stored) in cases {
            assert_eq!(target.to_string(), stored);
        }
    }
}

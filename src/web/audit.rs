//! `Audit`: the extractor an audited route takes to write its audit row in one line,
//! `audit.record("device.delete", Target::Device(id)).await;`.
//!
//! It carries the database, the client's address and the caller the authentication middleware
//! resolved for this request (tenant and acting user), so a route names only what happened and
//! to what. Routes without a signed-in caller (sign-in, sign-up, the lead webhook) name the
//! tenant and actor with [`Record::by`]; MCP tool calls make theirs with [`Audit::for_caller`].
//! The rows are written by [`crate::audit`], which owns the table; a failed write is logged,
//! never answered (the action already happened).

use std::future::{ready, Future, IntoFuture, Ready};
use std::pin::Pin;

use actix_web::{web, FromRequest, HttpRequest};

use super::input::client_ip;
use super::{auth, ApiError, AppState};
use crate::audit::{self, AuditEntry, Target};
use crate::auth::Caller;
use crate::db::Db;

/// Writes audit rows for the current request.
pub struct Audit {
    db: Db,
    tenant_id: Option<i64>,
    actor_user_id: Option<i64>,
    ip: Option<String>,
}

impl FromRequest for Audit {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(Audit::of(req))
    }
}

impl Audit {
    /// The audit writer of `req`: its caller, if authenticated, is the actor.
    fn of(req: &HttpRequest) -> Result<Self, ApiError> {
        let state = req
            .app_data::<web::Data<AppState>>()
            .ok_or_else(|| ApiError::internal("application state missing"))?;
        let caller = auth::authenticated(req);
        Ok(Audit {
            db: state.db.clone(),
            tenant_id: caller.as_ref().map(|c| c.tenant_id),
            actor_user_id: caller.as_ref().map(|c| c.user.id),
            ip: client_ip(req),
        })
    }

    /// The audit writer of a caller authenticated elsewhere than the middleware (an MCP tool
    /// call), from the client's address `ip`.
    pub fn for_caller(state: &AppState, caller: &Caller, ip: Option<String>) -> Self {
        Audit {
            db: state.db.clone(),
            tenant_id: Some(caller.tenant_id),
            actor_user_id: Some(caller.user.id),
            ip,
        }
    }

    /// A row saying the caller did `action` to `target` (`None` when the action has no object);
    /// written when awaited.
    pub fn record<'a>(&'a self, action: &'a str, target: impl Into<Option<Target>>) -> Record<'a> {
        Record {
            db: &self.db,
            entry: AuditEntry {
                tenant_id: self.tenant_id,
                actor_user_id: self.actor_user_id,
                action,
                target: target.into(),
                detail: None,
                ip: self.ip.clone(),
            },
        }
    }
}

/// An audit row about to be written; `.await` writes it.
#[must_use = "an audit row is written only when awaited"]
pub struct Record<'a> {
    db: &'a Db,
    entry: AuditEntry<'a>,
}

impl Record<'_> {
    /// Adds JSON detail (never secrets).
    pub fn detail(mut self, detail: impl Into<Option<serde_json::Value>>) -> Self {
        self.entry.detail = detail.into();
        self
    }

    /// Names tenant and actor, for routes where they are not the signed-in caller.
    pub fn by(mut self, tenant_id: Option<i64>, actor_user_id: Option<i64>) -> Self {
        self.entry.tenant_id = tenant_id;
        self.entry.actor_user_id = actor_user_id;
        self
    }
}

impl<'a> IntoFuture for Record<'a> {
    type Output = ();
    type IntoFuture = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(audit::record(self.db, self.entry))
    }
}

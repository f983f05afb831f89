//! Messages of the webhook [`Dispatcher`](super::dispatcher::Dispatcher).

use actix::Message;

use crate::db::DbError;

/// Endpoints changed (created, edited, deleted, switched on): read them again.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReloadEndpoints;

/// Queue a `webhook.test` event for one endpoint (whatever its filters); answers the delivery
/// id.
#[derive(Debug, Message)]
#[rtype(result = "Result<i64, DbError>")]
pub struct SendTest {
    /// Tenant.
    pub tenant_id: i64,
    /// Endpoint.
    pub endpoint_id: i64,
}

/// A delivery was queued again (replay): look at its endpoint now.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Wake {
    /// Endpoint.
    pub endpoint_id: i64,
}

/// The daemon is stopping: write what is buffered, finish the attempts in flight (bounded by
/// the caller's deadline) and hand claimed but unstarted deliveries back to the queue.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Drain;

//! Scale-out: several daemons (nodes) on one PostgreSQL share one fleet.
//!
//! - Each node registers a row in `nodes` and heartbeats it; a node is dead once its heartbeat
//!   is older than `cluster.lease_secs` (by the database's clock, never a node's).
//! - A running device has a lease in `device_leases` (node, epoch, expires_at). Its actor runs
//!   only on the lease's node. A node renews all of its leases in one statement per heartbeat
//!   and learns from that statement which devices are its own: one it no longer holds stops.
//! - The epoch is a fencing token ([`Fence`](crate::db::Fence)): outbox claims and finishes
//!   check it, so a node that lost a lease (paused, cut off) sends and records nothing for it.
//! - Placement ([`placement`]): each live node's fair share of the devices is proportional to
//!   its capacity; a node claims ownerless devices (new, or a dead node's) up to its share, and
//!   a node above its share (or draining) hands devices one by one to a node below, at most
//!   `cluster.handovers_per_second`: the old owner stops the device, then writes the lease to
//!   the new owner, so the two never run it together.
//! - Work that must run once (scheduled starts, completions, moves, sequence steps) runs on the
//!   node holding the `cluster_leader` lease ([`ClusterView::is_leader`]).
//! - Device commands reach the node that runs the device: the HTTP layer forwards them
//!   (`crate::web::forward`), so every API call works on any node.
//!
//! On SQLite there is one node: [`ClusterView::single_node`] answers that every device runs
//! here and that this node leads, and no [`NodeLeases`](leases::NodeLeases) actor runs.
//!
//! Files: [`store`] every cluster statement; [`placement`] the pure share and handover rules;
//! [`leases`] the `NodeLeases` actor; [`identity`] the node's name and address.

pub mod identity;
pub mod leases;
pub mod placement;
pub mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use actix::Addr;

use crate::config::Settings;
use crate::db::{Db, DbError, Fence};
use crate::device::admission::Priority;
use crate::device::messages::StartDevice;
use crate::device::model::Device;
use crate::device::supervisor::DeviceSupervisor;
use identity::NodeIdentity;
use leases::{ClaimHere, Freeze, Leave, NodeLeases};
use store::{ClusterDb, NodeStatus, Owner};

/// Connections of the cluster's own pool (a round runs its statements one after another; a
/// forwarded command's owner lookup may run beside it).
const CLUSTER_CONNECTIONS: usize = 2;

/// Where a device's work may run, as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// One node runs everything: no lease to check.
    SingleNode,
    /// This node holds the device's lease.
    Held(Fence),
    /// Another node (or none yet) holds it.
    Elsewhere,
}

impl Lease {
    /// Whether the device runs on this node.
    pub fn is_here(&self) -> bool {
        !matches!(self, Lease::Elsewhere)
    }

    /// The fence writes for the device must check (none on a single node).
    pub fn fence(self) -> Option<Fence> {
        match self {
            Lease::Held(fence) => Some(fence),
            _ => None,
        }
    }
}

/// What the rest of the daemon asks about the cluster. Cheap to clone; answers from memory.
#[derive(Clone, Default)]
pub struct ClusterView {
    shared: Option<Arc<Shared>>,
}

/// The state a [`ClusterView`] reads and the `NodeLeases` actor writes.
struct Shared {
    node_id: Arc<str>,
    /// Devices whose lease this node holds, with the lease's epoch.
    owned: RwLock<HashMap<i64, i64>>,
    /// Whether this node holds the leader lease.
    leader: AtomicBool,
}

impl ClusterView {
    /// One daemon runs every device and leads (SQLite).
    pub fn single_node() -> Self {
        Self::default()
    }

    /// A node of a cluster, owning nothing yet and not leading.
    pub fn node(node_id: &str) -> Self {
        Self {
            shared: Some(Arc::new(Shared {
                node_id: node_id.into(),
                owned: RwLock::new(HashMap::new()),
                leader: AtomicBool::new(false),
            })),
        }
    }

    /// This node's name on a cluster.
    pub fn node_id(&self) -> Option<&str> {
        self.shared.as_ref().map(|s| s.node_id.as_ref())
    }

    /// Whether once-only work runs here.
    pub fn is_leader(&self) -> bool {
        self.shared
            .as_ref()
            .is_none_or(|s| s.leader.load(Ordering::Relaxed))
    }

    /// Where `device_id`'s work may run.
    pub fn lease(&self, device_id: i64) -> Lease {
        let Some(shared) = &self.shared else {
            return Lease::SingleNode;
        };
        let epoch = shared
            .owned
            .read()
            .ok()
            .and_then(|owned| owned.get(&device_id).copied());
        match epoch {
            Some(epoch) => Lease::Held(Fence {
                device_id,
                node_id: shared.node_id.clone(),
                epoch,
            }),
            None => Lease::Elsewhere,
        }
    }

    /// How many devices this node holds (every registered one on a single node: `None`).
    pub fn owned_count(&self) -> Option<usize> {
        let shared = self.shared.as_ref()?;
        shared.owned.read().ok().map(|owned| owned.len())
    }

    /// Records that this node holds `device_id` under `epoch`.
    fn hold(&self, device_id: i64, epoch: i64) {
        if let Some(mut owned) = self.shared.as_ref().and_then(|s| s.owned.write().ok()) {
            owned.insert(device_id, epoch);
        }
    }

    /// Records that this node no longer holds `device_id`.
    fn drop_lease(&self, device_id: i64) {
        if let Some(mut owned) = self.shared.as_ref().and_then(|s| s.owned.write().ok()) {
            owned.remove(&device_id);
        }
    }

    /// The devices this node holds, with their epochs.
    fn held(&self) -> HashMap<i64, i64> {
        self.shared
            .as_ref()
            .and_then(|s| s.owned.read().ok().map(|owned| owned.clone()))
            .unwrap_or_default()
    }

    /// Sets whether this node leads.
    fn set_leader(&self, leader: bool) {
        if let Some(shared) = &self.shared {
            shared.leader.store(leader, Ordering::Relaxed);
        }
    }
}

/// The cluster as start-up and the HTTP layer use it: the view, and on PostgreSQL this node's
/// `NodeLeases` actor and the cluster statements.
#[derive(Clone, Default)]
pub struct Cluster {
    /// What runs here.
    pub view: ClusterView,
    node: Option<Arc<Node>>,
}

/// This node of a cluster.
struct Node {
    db: ClusterDb,
    leases: Addr<NodeLeases>,
    lease_secs: f64,
    identity: NodeIdentity,
    /// The thread `NodeLeases` runs on.
    _arbiter: actix::Arbiter,
}

impl Cluster {
    /// One daemon on SQLite: every device runs here.
    pub fn single_node() -> Self {
        Self::default()
    }

    /// The view of this node before it joins: on PostgreSQL a cluster node holding nothing yet,
    /// on SQLite a single node. Engines take it at their start; [`Cluster::join`] fills it.
    pub fn view_for(db: &Db, identity: &NodeIdentity) -> ClusterView {
        match db {
            Db::Postgres(_) => ClusterView::node(&identity.id),
            Db::Sqlite(_) => ClusterView::single_node(),
        }
    }

    /// Joins the cluster on PostgreSQL (starting `NodeLeases`, which claims and starts this
    /// node's devices; `wafleet_cluster_statements_total` goes to `registry`); boots every
    /// device on SQLite.
    pub async fn join(
        db: &Db,
        view: ClusterView,
        settings: &Settings,
        identity: NodeIdentity,
        supervisor: &Addr<DeviceSupervisor>,
        registry: &prometheus::Registry,
    ) -> anyhow::Result<Self> {
        if matches!(db, Db::Sqlite(_)) {
            DeviceSupervisor::boot(supervisor.clone(), db.clone()).await?;
            return Ok(Self::single_node());
        }
        // A small pool of its own: heartbeats (and the device rows a renewal starts) never queue
        // behind a busy fleet's queries, which could otherwise hold them past the lease.
        let mut own = settings.database.clone();
        own.max_connections = CLUSTER_CONNECTIONS;
        let own_db = Db::connect(&own).await?;
        let cluster_db = ClusterDb::of(&own_db)
            .ok_or_else(|| anyhow::anyhow!("the cluster needs PostgreSQL"))?;
        registry.register(Box::new(cluster_db.statements()))?;
        tracing::info!(node = %identity.id, "booting device fleet as a cluster node");
        // Devices it claims are loaded on its own pool too.
        let leases = NodeLeases::new(
            own_db,
            cluster_db.clone(),
            view.clone(),
            supervisor.clone(),
            settings.cluster.clone(),
            identity.clone(),
        );
        // A thread of its own: a fleet busy with thousands of lanes and sessions on the main
        // arbiter must not hold a heartbeat past the lease.
        let arbiter = actix::Arbiter::new();
        let leases = actix::Supervisor::start_in_arbiter(&arbiter.handle(), move |_| leases);
        Ok(Self {
            view,
            node: Some(Arc::new(Node {
                db: cluster_db,
                leases,
                lease_secs: settings.cluster.lease_secs as f64,
                identity,
                _arbiter: arbiter,
            })),
        })
    }

    /// Whether several daemons may share the fleet (PostgreSQL).
    pub fn is_clustered(&self) -> bool {
        self.node.is_some()
    }

    /// Runs a device (just created, or reconnected by a user): here on a single node; on a
    /// cluster here unless another node runs it. Whether it runs here.
    pub async fn run_device(
        &self,
        supervisor: &Addr<DeviceSupervisor>,
        device: Device,
        priority: Priority,
    ) -> Result<bool, DbError> {
        match &self.node {
            None => {
                supervisor.do_send(StartDevice {
                    device,
                    priority,
                    fence: None,
                });
                Ok(true)
            }
            Some(node) => node
                .leases
                .send(ClaimHere { device, priority })
                .await
                .map_err(|_| DbError::Unavailable("the cluster membership actor stopped".into()))?,
        }
    }

    /// The other node that runs `device_id`: `None` on a single node, when it runs here, or
    /// when no node runs it.
    pub async fn runs_elsewhere(&self, device_id: i64) -> Result<Option<Owner>, DbError> {
        let Some(node) = &self.node else {
            return Ok(None);
        };
        if self.view.lease(device_id).is_here() {
            return Ok(None);
        }
        let owner = store::owner(&node.db, device_id).await?;
        Ok(owner.filter(|o| o.node_id != node.identity.id))
    }

    /// Every node with its load; empty on a single node.
    pub async fn nodes(&self) -> Result<Vec<NodeStatus>, DbError> {
        match &self.node {
            Some(node) => store::nodes(&node.db, node.lease_secs).await,
            None => Ok(Vec::new()),
        }
    }

    /// Starts (or ends) a node's drain; false when no such node (or a single node).
    pub async fn set_draining(&self, node_id: &str, draining: bool) -> Result<bool, DbError> {
        match &self.node {
            Some(node) => store::set_draining(&node.db, node_id, draining).await,
            None => Ok(false),
        }
    }

    /// Shutdown begins: this node starts and hands over nothing more.
    pub fn freeze(&self) {
        if let Some(node) = &self.node {
            node.leases.do_send(Freeze);
        }
    }

    /// Shutdown, devices disconnected: gives every lease up at once.
    pub async fn leave(&self) {
        if let Some(node) = &self.node {
            let _ = node.leases.send(Leave).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_node_runs_everything_and_leads() {
        let view = ClusterView::single_node();
        assert_eq!(view.lease(7), Lease::SingleNode);
        assert!(view.lease(7).is_here());
        assert!(view.is_leader());
        assert_eq!(view.lease(7).fence(), None);
    }

    #[test]
    fn a_node_runs_only_what_it_holds_under_that_epoch() {
        let view = ClusterView::node("a");
        assert_eq!(view.lease(7), Lease::Elsewhere);
        assert!(!view.is_leader());
        view.hold(7, 42);
        let fence = view.lease(7).fence().unwrap();
        assert_eq!(
            (fence.device_id, fence.epoch, &*fence.node_id),
            (7, 42, "a")
        );
        view.drop_lease(7);
        assert!(!view.lease(7).is_here());
        view.set_leader(true);
        assert!(view.is_leader());
    }
}

//! Messages of the device actors and their supervisor.
//!
//! Flow: the supervisor starts a `DeviceActor`; the actor asks for a connect slot
//! (`RequestAdmission`), the supervisor answers `Admitted` when the admission queue lets it
//! through, the actor connects and reports `ConnectSettled` and every `StatusChanged`. Operators
//! reach actors through the supervisor (`RestartDevices`, `StopDevice`, `Drain`).

use std::collections::BTreeMap;
use std::time::Duration;

use actix::Message;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admission::Priority;
use super::model::{Device, DeviceStatus};
use crate::db::Fence;

/// Errors a device operation answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// No actor runs for this device (deleted, parked, or never started).
    #[error("the device is not running")]
    NotRunning,
    /// The operation needs an online session.
    #[error("the device is not connected")]
    NotConnected,
    /// The operation does not fit the device's state (e.g. a pair code while online).
    #[error("{0}")]
    WrongState(String),
    /// The connector refused for another reason.
    #[error("{0}")]
    Connector(String),
    /// WhatsApp asked this account to slow down.
    #[error("rate limited, retry in {retry_after_ms} ms")]
    RateLimited {
        /// How long to wait.
        retry_after_ms: u64,
    },
    /// The recipient is not a valid WhatsApp address.
    #[error("invalid recipient: {0}")]
    InvalidRecipient(String),
    /// The actor vanished while handling the request.
    #[error("the device actor is gone")]
    Gone,
}

impl From<crate::whatsapp::ConnectorError> for DeviceError {
    fn from(err: crate::whatsapp::ConnectorError) -> Self {
        use crate::whatsapp::ConnectorError as C;
        match err {
            C::NotConnected => DeviceError::NotConnected,
            C::RateLimited { retry_after_ms } => DeviceError::RateLimited { retry_after_ms },
            C::InvalidRecipient(to) => DeviceError::InvalidRecipient(to),
            other => DeviceError::Connector(other.to_string()),
        }
    }
}

// ---- to a DeviceActor ---------------------------------------------------------------------

/// The admission queue let this device connect now.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Admitted;

/// Drop the current session (if any) and connect again through the admission queue.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Reconnect {
    /// Why, for the status reason.
    pub reason: String,
}

/// Stop for good: disconnect the session without logging out, then stop the actor.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Retire;

/// The restart budget is spent: persist `parked` with the reason and retire.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Park {
    /// Why.
    pub reason: String,
}

/// The device's live state.
#[derive(Debug, Message)]
#[rtype(result = "DeviceSnapshot")]
pub struct GetDeviceState;

/// What `GetDeviceState` answers.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeviceSnapshot {
    /// Current status.
    pub status: DeviceStatus,
    /// Why.
    pub reason: Option<String>,
    /// The QR payload while awaiting a scan.
    pub qr: Option<String>,
    /// The pairing code while awaiting one.
    pub pair_code: Option<String>,
    /// Whether a session is open and online.
    pub connected: bool,
    /// Milliseconds since the session last reported anything.
    pub last_event_age_ms: Option<u64>,
}

/// Switch pairing to a code for this phone number.
#[derive(Debug, Message)]
#[rtype(result = "Result<String, DeviceError>")]
pub struct RequestPairCode {
    /// Digits in international form.
    pub phone: String,
}

/// Unlink the device from the phone and forget its credentials.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DeviceError>")]
pub struct Logout;

/// Send a text from this device, under a message id chosen by the caller.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DeviceError>")]
pub struct SendText {
    /// Recipient JID.
    pub to: String,
    /// Pre-generated WhatsApp message id (a retry reuses it).
    pub message_id: String,
    /// The text.
    pub text: String,
}

/// Share a place from this device, under a message id chosen by the caller.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DeviceError>")]
pub struct SendLocation {
    /// Recipient JID.
    pub to: String,
    /// Pre-generated WhatsApp message id.
    pub message_id: String,
    /// The place.
    pub place: crate::whatsapp::Location,
}

/// Send a file (already checked and prepared: pictures are JPEGs ≤ 350 KB).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DeviceError>")]
pub struct SendMedia {
    /// Recipient JID.
    pub to: String,
    /// Pre-generated WhatsApp message id.
    pub message_id: String,
    /// The file, its kind, caption and name.
    pub file: crate::whatsapp::OutgoingMedia,
}

/// Show (or stop showing) "typing…" in a chat.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DeviceError>")]
pub struct SetTyping {
    /// Chat JID.
    pub to: String,
    /// Start (true) or stop.
    pub typing: bool,
}

/// List the groups the device is in.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<crate::whatsapp::Group>, DeviceError>")]
pub struct ListGroups;

/// Download received media by the reference its message carried.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<u8>, DeviceError>")]
pub struct FetchMedia {
    /// The media's kind.
    pub kind: crate::whatsapp::MessageKind,
    /// The reference.
    pub reference: String,
    /// The most bytes to take.
    pub max_bytes: u64,
}

/// Send read receipts for messages of a chat.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DeviceError>")]
pub struct MarkRead {
    /// Chat JID.
    pub chat: String,
    /// Message ids to mark.
    pub message_ids: Vec<String>,
}

/// Fault injection for supervision drills (simulator only): panic inside the actor, which takes
/// its arbiter down exactly as a bug would.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct InjectPanic;

// ---- to the DeviceSupervisor ----------------------------------------------------------------

/// Start (or restart) the actor of a device.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StartDevice {
    /// The device row.
    pub device: Device,
    /// Queue priority of its first connect.
    pub priority: Priority,
    /// The device's lease as this daemon holds it (PostgreSQL clusters; `None` on one node).
    pub fence: Option<Fence>,
}

/// An actor asks for a connect slot after `after` (its backoff).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RequestAdmission {
    /// Device.
    pub device_id: i64,
    /// Delay before it joins the queue.
    pub after: Duration,
    /// Queue priority.
    pub priority: Priority,
    /// True when this follows a drop of an online session (counts against the budget).
    pub is_restart: bool,
}

/// A connect finished (online, showing a QR or code, or failed): its slot is free.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ConnectSettled {
    /// Device.
    pub device_id: i64,
}

/// An actor committed a status transition.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StatusChanged {
    /// Device.
    pub device_id: i64,
    /// New status.
    pub status: DeviceStatus,
    /// The device's JID after the change (a re-created actor logs in with it).
    pub jid: Option<String>,
}

/// An actor restarted in place after stopping itself (counts against the budget).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ActorRestarted {
    /// Device.
    pub device_id: i64,
}

/// Stop a device's actor; with `forget`, drop it from the registry (deletion).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopDevice {
    /// Device.
    pub device_id: i64,
    /// Remove from the registry.
    pub forget: bool,
}

/// Operator restart of some or all devices (resets their restart budget).
#[derive(Debug, Message)]
#[rtype(result = "RestartReport")]
pub struct RestartDevices {
    /// Which devices; `None` means all.
    pub ids: Option<Vec<i64>>,
}

/// What a restart request did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RestartReport {
    /// Devices restarted.
    pub restarted: Vec<i64>,
    /// Requested ids no node runs.
    pub unknown: Vec<i64>,
}

/// The address of a device's actor, if running.
#[derive(Debug, Message)]
#[rtype(result = "Option<actix::Addr<super::actor::DeviceActor>>")]
pub struct GetDeviceActor {
    /// Device.
    pub device_id: i64,
}

/// Stop admitting connects and disconnect every device (node drain before maintenance).
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct Drain;

/// Disconnect everything and stop (daemon shutdown); answers when done.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Supervision status for the admin API.
#[derive(Debug, Message)]
#[rtype(result = "SupervisionSnapshot")]
pub struct GetSupervision;

/// What `GetSupervision` answers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SupervisionSnapshot {
    /// Devices known to the supervisor.
    pub devices: usize,
    /// Count per status.
    pub by_status: BTreeMap<String, usize>,
    /// Restarts since start (actor crashes, in-place restarts, dropped sessions).
    pub restarts_total: u64,
    /// Parked devices with their reasons.
    pub parked: Vec<ParkedDevice>,
    /// Pending reconnect timers.
    pub backoff: Vec<BackoffTimer>,
    /// Admission queue.
    pub admission: AdmissionSnapshot,
    /// Start-up progress.
    pub boot: BootProgress,
    /// Whether the node is draining.
    pub draining: bool,
    /// Arbiters hosting device actors, and how many were replaced after a crash.
    pub arbiters: usize,
    /// Arbiters replaced after crashing.
    pub arbiters_replaced: u64,
}

/// A parked device.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ParkedDevice {
    /// Device.
    pub device_id: i64,
    /// Why it was parked.
    pub reason: String,
}

/// A device waiting out its backoff.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BackoffTimer {
    /// Device.
    pub device_id: i64,
    /// Milliseconds until it joins the admission queue.
    pub due_in_ms: u64,
}

/// Admission queue counters.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AdmissionSnapshot {
    /// Waiting for a slot.
    pub waiting: usize,
    /// Connecting now.
    pub in_flight: usize,
}

/// Start-up progress: how many of the devices found at boot are back.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct BootProgress {
    /// Devices started at boot.
    pub total: usize,
    /// Of those, how many have settled (online, awaiting pairing, or failed).
    pub settled: usize,
    /// Of those, how many are online.
    pub online: usize,
    /// Milliseconds from boot start until every boot device settled, once it has.
    pub finished_after_ms: Option<u64>,
}

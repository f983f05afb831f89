//! The messages the [`CampaignEngine`](super::engine::CampaignEngine) handles from the rest of
//! the daemon (HTTP routes, the sequence API, the benchmark). Its internal ones (a lane ended, a
//! tick finished, a scheduled start is due) stay private in the actor file.

use actix::Message;

use super::error::EngineError;

/// Start a draft or scheduled campaign now: write its outbox and send. Answers the rows written.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, EngineError>")]
pub struct StartCampaign {
    /// Campaign.
    pub campaign_id: i64,
}

/// Run a campaign that is already running or paused in the database (a new sequence's
/// carrier), if this engine does not run it yet.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct WatchCampaign {
    /// Campaign.
    pub campaign_id: i64,
}

/// Pause, resume or cancel a campaign.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), EngineError>")]
pub struct ControlCampaign {
    /// Campaign.
    pub campaign_id: i64,
    /// What to do.
    pub action: Action,
}

/// Put a started campaign's failed messages (all, or one device's) back in the queue, reopen
/// the campaign if it had completed, and publish its progress. Answers how many rows were
/// put back.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, EngineError>")]
pub struct RetryFailed {
    /// The campaign's tenant (the campaign must be one of its own).
    pub tenant_id: i64,
    /// Campaign.
    pub campaign_id: i64,
    /// Only this device's failed rows (all devices' when absent).
    pub device_id: Option<i64>,
}

/// A user's action on a started campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// running → paused.
    Pause,
    /// paused → running.
    Resume,
    /// draft | scheduled | running | paused → cancelled.
    Cancel,
}

/// The daemon is stopping: withdraw every lane (claimed, unsent rows go back to pending; a send
/// already handed to WhatsApp is recorded as sent), start no new ones, and answer once the last
/// lane has ended. Campaigns keep their status, so the next start resumes them.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopLanes;

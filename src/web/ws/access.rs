//! What a WebSocket session may hear and whether it may go on: which topics
//! ([`authorize_topics`]); whether its credential still holds, re-resolved when its user's access
//! changes on this daemon and every `ws.recheck_secs` (see [`super::session`]), the session being
//! closed with 4401 once it no longer resolves or resolves to other access; and what a viewer may
//! not read on the stream (pairing QR payloads).
//!
//! A changed role or set of assigned devices closes the session rather than trimming its topics:
//! the client reconnects and re-subscribes, so every topic is authorized again by the one path
//! that authorizes the first subscription, and nothing subscribed under the old access lingers
//! (the hub's per-subscriber device filter included).

use std::collections::HashSet;

use chrono::{Duration as ChronoDuration, Utc};
use futures_util::Stream;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::auth::{caller, AuthError, Caller};
use crate::broadcast::campaign::store as campaign_store;
use crate::broadcast::leads::store as lead_store;
use crate::broadcast::sequence::store as sequence_store;
use crate::db::{Db, DbError};
use crate::device::store as devices;
use crate::hub::Topic;

/// The hub event carrying a pairing QR payload (see `device::events`).
const QR_EVENT: &str = "QR_UPDATED";

/// The secret a session authenticated with, kept to resolve it again.
#[derive(Clone)]
pub enum Secret {
    /// An API token (bearer header or `?token=`).
    Token(String),
    /// A browser session cookie's value.
    Cookie(String),
}

/// What re-checking a session needs.
#[derive(Clone)]
pub struct Credentials {
    /// The secret it authenticated with.
    pub secret: Secret,
    /// Database.
    pub db: Db,
    /// `auth.session_idle_minutes`, for cookies.
    pub idle: ChronoDuration,
}

impl Credentials {
    /// The caller the secret resolves to now (a cookie session's idle clock moves as for any
    /// request: an open stream counts as activity).
    pub async fn resolve(&self) -> Result<Caller, AuthError> {
        let now = Utc::now().naive_utc();
        match &self.secret {
            Secret::Token(token) => caller::by_token(&self.db, token, now).await,
            Secret::Cookie(cookie) => caller::by_session(&self.db, cookie, now, self.idle).await,
        }
    }
}

/// What a re-check decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Same access as before.
    Keep,
    /// The check could not run (database down); the next one tries again.
    Unknown,
    /// Close with 4401 and this reason.
    Close(String),
}

/// Compares the caller the credential resolves to now with the one the session opened as.
pub fn verdict(opened_as: &Caller, now: Result<Caller, AuthError>) -> Verdict {
    match now {
        Ok(now)
            if now.user.id == opened_as.user.id
                && now.tenant_id == opened_as.tenant_id
                && now.role == opened_as.role
                && now.assigned_devices == opened_as.assigned_devices =>
        {
            Verdict::Keep
        }
        Ok(_) => Verdict::Close("your access changed; reconnect".into()),
        Err(AuthError::Db(err)) => {
            tracing::warn!(error = %err, "could not re-check a WebSocket session");
            Verdict::Unknown
        }
        Err(err) => Verdict::Close(err.to_string()),
    }
}

/// A change that may concern the session's access: re-check it.
#[derive(Debug, Clone, Copy)]
pub struct AccessChanged;

/// The changes that concern `user_id`: one item per change of that user, and one per lag (some
/// changes were missed, so re-check to be safe). Ends when the daemon's signal closes.
pub fn changes_of(
    changes: broadcast::Receiver<i64>,
    user_id: i64,
) -> impl Stream<Item = AccessChanged> + Unpin + 'static {
    Box::pin(futures_util::stream::unfold(
        changes,
        move |mut changes| async move {
            loop {
                match changes.recv().await {
                    Ok(id) if id == user_id => return Some((AccessChanged, changes)),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        return Some((AccessChanged, changes))
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    ))
}

/// A hub frame as a viewer may read it: a `QR_UPDATED` frame without its QR payload (its
/// `seq` kept, so the client sees no gap); `None` when the frame needs no change.
pub fn redact_for_viewer(text: &str) -> Option<String> {
    if !text.contains(QR_EVENT) {
        return None;
    }
    let mut frame: Value = serde_json::from_str(text).ok()?;
    if frame.get("event").and_then(Value::as_str) != Some(QR_EVENT) {
        return None;
    }
    if let Some(data) = frame.get_mut("data").and_then(Value::as_object_mut) {
        data.remove("code");
    }
    serde_json::to_string(&frame).ok()
}

/// What a subscription answers for one topic it named: the topic, or an error code and message.
pub type TopicVerdict = Result<Topic, (&'static str, String)>;

/// Whether the caller may hear each of the topics it named, in its order: its own tenant's
/// devices (members: assigned ones), campaigns, lead lists and sequences. Ownership is read for
/// all the topics together, one statement per kind of topic (and per 1,000 ids), so a dashboard
/// subscribing to 3,000 devices' messages costs a few statements, not 3,000.
pub async fn authorize_topics(
    db: &Db,
    caller: &Caller,
    names: Vec<String>,
) -> Vec<(String, TopicVerdict)> {
    let parsed: Vec<(String, Option<Topic>)> = names
        .into_iter()
        .map(|name| {
            let topic = Topic::parse(&name);
            (name, topic)
        })
        .collect();
    let (mut devices, mut lists, mut campaigns, mut sequences) = (vec![], vec![], vec![], vec![]);
    for (_, topic) in &parsed {
        match topic {
            Some(Topic::Messages(id)) => devices.push(*id),
            Some(Topic::LeadList(id)) => lists.push(*id),
            Some(Topic::Campaign(id)) => campaigns.push(*id),
            Some(Topic::Sequence(id)) => sequences.push(*id),
            Some(Topic::DeviceStatus | Topic::OptOuts) | None => {}
        }
    }
    let tenant = caller.tenant_id;
    let devices = owned(devices::tenant_device_ids(db, tenant, &devices).await);
    let lists = owned(lead_store::tenant_list_ids(db, tenant, &lists).await);
    let campaigns = owned(campaign_store::tenant_campaign_ids(db, tenant, &campaigns).await);
    let sequences = owned(sequence_store::tenant_sequence_ids(db, tenant, &sequences).await);
    parsed
        .into_iter()
        .map(|(name, topic)| {
            let Some(topic) = topic else {
                let message = format!("unknown topic {name:?}; use device-status, messages/<device_id>, campaign/<campaign_id>, lead-lists/<list_id>, sequence/<sequence_id> or opt-outs");
                return (name, Err(("unknown_topic", message)));
            };
            let (owned, id, what) = match topic {
                Topic::DeviceStatus | Topic::OptOuts => return (name, Ok(topic)),
                Topic::Messages(id) => (&devices, id, "device"),
                Topic::LeadList(id) => (&lists, id, "lead list"),
                Topic::Campaign(id) => (&campaigns, id, "campaign"),
                Topic::Sequence(id) => (&sequences, id, "sequence"),
            };
            let assigned = !matches!(topic, Topic::Messages(_)) || caller.can_see_device(id);
            let verdict = match owned {
                // The check failed: "try again", not "not yours".
                None => Err((
                    "database_unavailable",
                    "the database did not answer; subscribe again".to_string(),
                )),
                Some(owned) if owned.contains(&id) && assigned => Ok(topic),
                Some(_) => Err(("forbidden_topic", format!("{what} {id} is not one of yours"))),
            };
            (name, verdict)
        })
        .collect()
}

/// The ids a tenant owns, or `None` when the database could not say.
fn owned(read: Result<HashSet<i64>, DbError>) -> Option<HashSet<i64>> {
    read.map_err(|err| tracing::warn!(error = %err, "could not check a subscription's topics"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_get_qr_frames_without_the_payload() {
        let qr = r#"{"topic":"device-status","event":"QR_UPDATED","data":{"device_id":1,"tenant_id":2,"code":"2@secret"},"ts":"2026-01-01T00:00:00Z","seq":7}"#;
        let redacted = redact_for_viewer(qr).unwrap();
        assert!(!redacted.contains("secret"), "{redacted}");
        let value: Value = serde_json::from_str(&redacted).unwrap();
        assert_eq!(value["seq"], 7);
        assert_eq!(value["data"]["device_id"], 1);
        let status = r#"{"topic":"device-status","event":"DEVICE_STATUS","data":{"reason":"QR_UPDATED"},"seq":8}"#;
        assert_eq!(redact_for_viewer(status), None);
    }
}

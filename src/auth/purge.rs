//! The session sweeper: deletes sessions past their absolute or idle expiry every
//! `auth.session_purge_interval_secs`, so the table holds live sessions only.

use std::time::Duration;

use chrono::{Duration as ChronoDuration, Utc};

use super::store;
use crate::config::AuthSettings;
use crate::db::Db;

/// Starts the sweeper on the current runtime; it runs until the runtime stops.
pub fn start(db: Db, settings: &AuthSettings) {
    let every = Duration::from_secs(settings.session_purge_interval_secs);
    let idle = ChronoDuration::minutes(settings.session_idle_minutes as i64);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            purge_once(&db, idle).await;
        }
    });
}

/// One sweep; a failure is logged and the next tick tries again.
async fn purge_once(db: &Db, idle: ChronoDuration) {
    let now = Utc::now().naive_utc();
    match store::purge_expired_sessions(db, now, now - idle).await {
        Ok(0) => {}
        Ok(purged) => tracing::debug!(purged, "deleted expired sessions"),
        Err(err) => tracing::warn!(error = %err, "cannot delete expired sessions"),
    }
}

//! The engine hears the daemon's access changes (a member's device assignment, role,
//! deactivation or deletion) and withdraws at once the lanes of devices a campaign may no longer
//! use, instead of at its next progress report.

use std::time::Instant;

use actix::prelude::*;

use super::super::devices::online_devices;
use super::super::model::DeviceChoice;
use super::super::store;
use super::CampaignEngine;

/// A user's access changed (`None`: changes were missed, so any user's may have).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(super) struct AccessChanged(Option<i64>);

/// The user ids of `changes` as a stream; `None` when some were missed (the receiver lagged).
pub(super) fn access_changes(
    changes: tokio::sync::broadcast::Receiver<i64>,
) -> impl futures_util::Stream<Item = AccessChanged> {
    use tokio::sync::broadcast::error::RecvError;
    futures_util::stream::unfold(changes, |mut changes| async move {
        let change = match changes.recv().await {
            Ok(user_id) => Some(user_id),
            Err(RecvError::Lagged(_)) => None,
            Err(RecvError::Closed) => return None,
        };
        Some((AccessChanged(change), changes))
    })
}

impl StreamHandler<AccessChanged> for CampaignEngine {
    /// Re-checks the devices of every campaign the user created or sends through their
    /// assignment: lanes of devices it may no longer use are withdrawn now, and a tick follows
    /// at once to move or hold their rows by the campaign's device-loss rule.
    fn handle(&mut self, msg: AccessChanged, ctx: &mut Context<Self>) {
        let runs: Vec<i64> = self
            .runs
            .iter()
            .filter(|(_, run)| run.stopping.is_none() && !run.lanes.is_empty())
            .map(|(id, _)| *id)
            .collect();
        if runs.is_empty() {
            return;
        }
        let db = self.deps.db.clone();
        ctx.spawn(
            async move {
                let mut rechecked = Vec::new();
                for id in runs {
                    let Ok(campaign) = store::find_campaign(&db, id).await else {
                        continue; // Gone: the next tick stops its lanes.
                    };
                    let affected = msg.0.is_none_or(|user_id| {
                        campaign.created_by == Some(user_id)
                            || matches!(campaign.device_choice(), DeviceChoice::Member { user_id: member } if member == user_id)
                    });
                    if !affected {
                        continue;
                    }
                    match online_devices(&db, &campaign).await {
                        Ok(online) => rechecked.push((id, online)),
                        Err(err) => tracing::warn!(campaign_id = id, error = %err, "cannot re-check a campaign's devices"),
                    }
                }
                rechecked
            }
            .into_actor(self)
            .map(|rechecked, engine, ctx| {
                if rechecked.is_empty() {
                    return;
                }
                for (id, online) in rechecked {
                    let Some(run) = engine.runs.get_mut(&id) else {
                        continue;
                    };
                    let (_, here) = run.usable(&online, &engine.deps.cluster);
                    run.withdraw_lanes_outside(id, &here);
                    run.report_due = Instant::now();
                }
                engine.tick_soon(ctx);
            }),
        );
    }

    /// The daemon's signal outlives the engine; should it end, the engine runs on without it.
    fn finished(&mut self, _: &mut Context<Self>) {}
}

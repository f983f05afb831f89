//! Access changes: a per-daemon signal that a user's access may have changed (sign-out, password
//! change, token revoked, deactivated, role or device assignment changed), so long-lived
//! connections (WebSockets) re-check their credential at once instead of at their next periodic
//! check. Other daemons of a shared fleet learn of it by that periodic check.

use tokio::sync::broadcast;

/// Changes buffered per subscriber; a subscriber that falls behind re-checks (see
/// [`broadcast::error::RecvError::Lagged`]).
const CAPACITY: usize = 256;

/// Sender side of the signal, cloned into whatever changes access.
#[derive(Clone)]
pub struct AccessChanges {
    tx: broadcast::Sender<i64>,
}

impl Default for AccessChanges {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl AccessChanges {
    /// Announces that `user_id`'s credentials, role, activity or assignments changed.
    pub fn user_changed(&self, user_id: i64) {
        // No subscriber is not an error: nobody has a connection open.
        let _ = self.tx.send(user_id);
    }

    /// A receiver of the user ids whose access changed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<i64> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_hear_each_change() {
        let changes = AccessChanges::default();
        let mut rx = changes.subscribe();
        changes.user_changed(7);
        changes.user_changed(9);
        assert_eq!(rx.recv().await.ok(), Some(7));
        assert_eq!(rx.recv().await.ok(), Some(9));
    }
}

//! [`SimConnector`]: the [`Connector`] that opens sessions on a [`SimNetwork`].
//!
//! `connect` registers the session and announces it: `Connected` for the JID of an account
//! linked to this device, `Banned` (then the stream ends) for a banned one, else `Qr` and the
//! pairing timer. A session the new one replaces gets `Disconnected` and its stream ends.

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::network::{Opened, SimNetwork};
use super::outbox::Outbox;
use super::pairing;
use super::session::SimSession;
use crate::whatsapp::{Connector, ConnectorError, ConnectorEvent, Session, SessionRequest};

/// Reason told to a session that a newer connect of its device replaced.
const REPLACED: &str = "replaced by a newer connection of this device";

/// Opens sessions on the simulated network; one per daemon, shared by every device actor.
#[derive(Debug, Clone)]
pub struct SimConnector {
    /// The network sessions live on.
    network: SimNetwork,
    /// Which daemon opens the sessions (the remote simulator's client), if told.
    client: Option<String>,
}

impl SimConnector {
    /// A connector onto `network` (keep a clone of the network for scans, stats and faults).
    pub fn new(network: SimNetwork) -> Self {
        Self {
            network,
            client: None,
        }
    }

    /// The same connector, opening sessions on behalf of daemon `client`.
    pub fn for_client(mut self, client: Option<String>) -> Self {
        self.client = client;
        self
    }
}

#[async_trait]
impl Connector for SimConnector {
    async fn connect(
        &self,
        request: SessionRequest,
        events: mpsc::Sender<ConnectorEvent>,
    ) -> Result<Box<dyn Session>, ConnectorError> {
        let device_id = request.device_id;
        let outbox = Outbox::new(events);
        // Nobody else can reach this outbox until it is registered, so the turn is free; holding
        // it while registering puts the first event before anything a scan or a fault emits.
        let turn = outbox.turn().await;
        let (opened, replaced) = self.network.open_session(
            device_id,
            request.jid.as_deref(),
            &outbox,
            self.client.as_deref(),
        )?;
        let generation = match opened {
            Opened::Online {
                generation,
                jid,
                push_name,
                mut stop,
            } => {
                let connected = ConnectorEvent::Connected {
                    jid,
                    push_name: Some(push_name),
                };
                turn.send(connected, &mut stop).await;
                generation
            }
            Opened::Pairing {
                generation,
                qr,
                mut stop,
                pairing,
            } => {
                turn.send(ConnectorEvent::Qr { code: qr }, &mut stop).await;
                pairing::start_timer(&self.network, device_id, generation, pairing, true);
                generation
            }
            Opened::Banned => {
                drop(turn);
                let reason = "simulated: this number is banned".into();
                outbox.close(Some(ConnectorEvent::Banned { reason })).await;
                // Generations start at 1: the session is closed and every call says so.
                0
            }
        };
        if let Some(replaced) = replaced {
            let reason = REPLACED.into();
            replaced
                .end(Some(ConnectorEvent::Disconnected { reason }))
                .await;
        }
        Ok(Box::new(SimSession::new(
            self.network.clone(),
            device_id,
            generation,
            outbox,
        )))
    }

    fn name(&self) -> &'static str {
        "sim"
    }
}

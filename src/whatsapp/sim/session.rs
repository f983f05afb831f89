//! [`SimSession`]: one device's [`Session`] on the simulated network, as a device actor holds it.
//!
//! It is only a key (device id, generation) and the session's outbox; the state lives in the
//! network. Every call checks that this session is still the device's current one, so an old
//! session object that a reconnect replaced reports `NotConnected`. Dropping it ends the
//! session like `disconnect`, except that it cannot wait to close the stream itself (the stream
//! ends once the last in-flight emitter lets go of the sender).

use async_trait::async_trait;

use super::contacts;
use super::groups;
use super::network::SimNetwork;
use super::outbox::Outbox;
use super::pairing;
use crate::phone::parse_international;
use crate::whatsapp::{
    ConnectorError, ConnectorEvent, Group, Location, MessageKind, OutgoingMedia, Session,
};

/// A device's session on the simulated network.
#[derive(Debug)]
pub(super) struct SimSession {
    /// The network the session lives on.
    network: SimNetwork,
    /// The device.
    device_id: i64,
    /// Which of the device's sessions this is.
    generation: u64,
    /// Its events' way out.
    outbox: Outbox,
}

impl SimSession {
    /// The session `generation` of a device, emitting on `outbox`.
    pub(super) fn new(
        network: SimNetwork,
        device_id: i64,
        generation: u64,
        outbox: Outbox,
    ) -> Self {
        Self {
            network,
            device_id,
            generation,
            outbox,
        }
    }

    /// What `send_text` and `send_media` share: checks, injected latency, deduplication and
    /// pacing, then receipts and a possible answer.
    async fn send(&self, to: &str, message_id: &str) -> Result<(), ConnectorError> {
        self.network
            .ensure_online(self.device_id, self.generation)?;
        // A contact answers; a group's members only read.
        let phone = if self.group(to).is_some() {
            None
        } else {
            Some(
                self.network
                    .recipient(to)
                    .ok_or_else(|| ConnectorError::InvalidRecipient(to.into()))?,
            )
        };
        if message_id.is_empty() {
            return Err(ConnectorError::Other("empty message id".into()));
        }
        let latency = self.network.latency(self.device_id);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let accepted = self
            .network
            .accept_send(self.device_id, self.generation, message_id)?;
        if let (Some(emitter), Some(phone)) = (accepted, phone) {
            contacts::follow_up(&self.network, self.device_id, emitter, &phone, message_id);
        }
        Ok(())
    }

    /// The device's group with JID `jid`, if it is one.
    fn group(&self, jid: &str) -> Option<Group> {
        groups::find(self.device_id, self.network.settings().groups, jid)
    }

    /// Checks that this session is online and `chat` a valid chat address.
    fn check_chat(&self, chat: &str) -> Result<(), ConnectorError> {
        self.network
            .ensure_online(self.device_id, self.generation)?;
        if self.group(chat).is_some() {
            return Ok(());
        }
        self.network
            .recipient(chat)
            .map(drop)
            .ok_or_else(|| ConnectorError::InvalidRecipient(chat.into()))
    }
}

#[async_trait]
impl Session for SimSession {
    /// Switches a pairing to a code for `phone`; the next scan links that number. Also emits
    /// the code as `PairCode`.
    async fn request_pair_code(&self, phone: &str) -> Result<String, ConnectorError> {
        let phone = parse_international(phone)
            .ok_or_else(|| ConnectorError::InvalidRecipient(phone.into()))?;
        let mut stop = self
            .network
            .start_code_pairing(self.device_id, self.generation, phone)?;
        let code = pairing::pair_code();
        let event = ConnectorEvent::PairCode { code: code.clone() };
        if !self.outbox.emit(event, &mut stop).await {
            // Scanned, replaced or closed meanwhile.
            return Err(ConnectorError::NotConnected);
        }
        pairing::start_timer(&self.network, self.device_id, self.generation, stop, false);
        Ok(code)
    }

    async fn send_text(
        &self,
        to: &str,
        message_id: &str,
        _text: &str,
    ) -> Result<(), ConnectorError> {
        self.send(to, message_id).await
    }

    async fn send_location(
        &self,
        to: &str,
        message_id: &str,
        _place: &Location,
    ) -> Result<(), ConnectorError> {
        self.send(to, message_id).await
    }

    /// Refuses an empty file, as WhatsApp refuses an empty upload.
    async fn send_media(
        &self,
        to: &str,
        message_id: &str,
        file: OutgoingMedia,
    ) -> Result<(), ConnectorError> {
        if file.media.data.is_empty() {
            return Err(ConnectorError::Other(format!(
                "empty {}",
                file.kind.as_str()
            )));
        }
        self.send(to, message_id).await
    }

    /// The device's simulated groups (`sim.groups`).
    async fn groups(&self) -> Result<Vec<Group>, ConnectorError> {
        self.network
            .ensure_online(self.device_id, self.generation)?;
        Ok(groups::of_device(
            self.device_id,
            self.network.settings().groups,
        ))
    }

    /// The sample file of `kind`, unless a `media_unavailable` fault is armed.
    async fn download(
        &self,
        kind: MessageKind,
        reference: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ConnectorError> {
        self.network
            .ensure_online(self.device_id, self.generation)?;
        self.network
            .download(self.device_id, kind, reference, max_bytes)
    }

    /// Counted in `typing_events`; contacts do not see it.
    async fn set_typing(&self, to: &str, _typing: bool) -> Result<(), ConnectorError> {
        self.check_chat(to)?;
        self.network.count(|stats| stats.typing_events += 1);
        Ok(())
    }

    async fn mark_read(&self, chat: &str, _message_ids: &[String]) -> Result<(), ConnectorError> {
        self.check_chat(chat)
    }

    /// Forgets the device's account and ends the session. Emits no `LoggedOut`: the actor asked
    /// for it and changes its own state; it sees only the end of the stream.
    async fn logout(&self) -> Result<(), ConnectorError> {
        let unlinked = self.network.unlink(self.device_id, self.generation);
        let current = unlinked.is_some();
        drop(unlinked);
        self.outbox.close(None).await;
        if current {
            Ok(())
        } else {
            Err(ConnectorError::NotConnected)
        }
    }

    async fn disconnect(&self) {
        drop(self.network.end_session(self.device_id, self.generation));
        self.outbox.close(None).await;
    }
}

impl Drop for SimSession {
    fn drop(&mut self) {
        drop(self.network.end_session(self.device_id, self.generation));
    }
}

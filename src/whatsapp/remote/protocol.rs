//! The wire format of `wafleet sim`: first lines, requests, server lines, and bounded line I/O.
//! Everything read from the network is untrusted: lines are capped at [`MAX_LINE_BYTES`] and
//! must be UTF-8 JSON of the expected shape.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::whatsapp::sim::Fault;
use crate::whatsapp::{ConnectorError, ConnectorEvent, Location, MessageKind, OutgoingMedia};

/// Longest accepted line: room for a campaign image (base64 grows it by a third) and its
/// envelope, small enough that a bad peer cannot make either side buffer without bound.
pub const MAX_LINE_BYTES: usize = 32 * 1024 * 1024;

/// The first line of a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Hello {
    /// Open a device session, as `Connector::connect` does.
    Connect {
        /// Our device id.
        device_id: i64,
        /// The JID of the last login, if any.
        jid: Option<String>,
        /// Which daemon opens it (its cluster node name), so the simulator can tell one
        /// device's sessions from two daemons apart (`SimStats::double_sessions`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
    },
    /// Open a control connection.
    Control,
}

/// A request: an id the reply repeats, and the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request<C> {
    /// Chosen by the client, unique on its connection; `0` is the first line's reply.
    pub id: u64,
    /// What to do.
    #[serde(flatten)]
    pub call: C,
}

/// Just the id of a request whose call did not parse, to answer it with an error.
#[derive(Debug, Deserialize)]
pub struct RequestId {
    /// The request's id.
    pub id: u64,
}

/// What a session connection can ask: the methods of `Session`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SessionCall {
    /// `Session::request_pair_code`; replies with the code.
    RequestPairCode {
        /// Digits, international form.
        phone: String,
    },
    /// `Session::send_text`.
    SendText {
        /// Recipient JID or phone.
        to: String,
        /// The caller's message id.
        message_id: String,
        /// The text.
        text: String,
    },
    /// `Session::send_media`.
    SendMedia {
        /// Recipient JID or phone.
        to: String,
        /// The caller's message id.
        message_id: String,
        /// The file (bytes base64 in JSON).
        file: OutgoingMedia,
    },
    /// `Session::send_location`.
    SendLocation {
        /// Recipient JID or phone.
        to: String,
        /// The caller's message id.
        message_id: String,
        /// The place.
        place: Location,
    },
    /// `Session::groups`; replies with an array of groups.
    Groups,
    /// `Session::download`; replies with the bytes, base64.
    Download {
        /// The media's kind.
        kind: MessageKind,
        /// The reference its message carried.
        reference: String,
        /// The most bytes to take.
        max_bytes: u64,
    },
    /// `Session::set_typing`.
    SetTyping {
        /// The chat.
        to: String,
        /// Start (true) or stop.
        typing: bool,
    },
    /// `Session::mark_read`.
    MarkRead {
        /// The chat.
        chat: String,
        /// The messages.
        message_ids: Vec<String>,
    },
    /// `Session::logout`.
    Logout,
    /// `Session::disconnect`.
    Disconnect,
}

/// What a control connection can ask of the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ControlCall {
    /// `SimNetwork::stats`; replies with a `SimStats` object.
    Stats,
    /// `SimNetwork::delivered_ids`; replies with a sorted array of ids.
    DeliveredIds,
    /// `SimNetwork::send_attempts`; replies with a number.
    SendAttempts {
        /// The message id.
        message_id: String,
    },
    /// `SimNetwork::scan`; replies with the new JID.
    Scan {
        /// The pairing device.
        device_id: i64,
    },
    /// `SimNetwork::inject`.
    Inject {
        /// The device.
        device_id: i64,
        /// The fault.
        fault: Fault,
    },
}

/// A line from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerLine {
    /// A session event, in the order the session emitted it.
    Event(ConnectorEvent),
    /// The session's event stream ended.
    Closed,
    /// The answer to a request.
    Reply(Reply),
}

/// The answer to request `re`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The request's id.
    pub re: u64,
    /// `ok` with a value, or `err`.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// How a request went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done; the value depends on the call (`null` for most).
    Ok(serde_json::Value),
    /// Failed as the in-process call would have.
    Err(ConnectorError),
}

impl From<Result<serde_json::Value, ConnectorError>> for Outcome {
    fn from(result: Result<serde_json::Value, ConnectorError>) -> Self {
        match result {
            Ok(value) => Outcome::Ok(value),
            Err(err) => Outcome::Err(err),
        }
    }
}

/// Why a connection could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The socket failed, or the line was not UTF-8.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// A line over [`MAX_LINE_BYTES`], or cut short by the end of the stream.
    #[error("line longer than {MAX_LINE_BYTES} bytes or unterminated")]
    BadLine,
    /// A line that is not the JSON expected here.
    #[error("malformed line: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// Reads the next line into `line` (without its `\n`); false at the end of the stream.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut String,
) -> Result<bool, ProtocolError> {
    line.clear();
    let limit = u64::try_from(MAX_LINE_BYTES)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let read = (&mut *reader).take(limit).read_line(line).await?;
    if read == 0 {
        return Ok(false);
    }
    if line.pop() != Some('\n') {
        return Err(ProtocolError::BadLine);
    }
    Ok(true)
}

/// Reads and parses the next line; `None` at the end of the stream.
pub async fn read_json<T: DeserializeOwned, R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut String,
) -> Result<Option<T>, ProtocolError> {
    if !read_line(reader, line).await? {
        return Ok(None);
    }
    Ok(Some(serde_json::from_str(line)?))
}

/// Writes `value` as one line.
pub async fn write_json<T: Serialize, W: AsyncWrite + Unpin>(
    writer: &mut W,
    value: &T,
) -> Result<(), ProtocolError> {
    let mut bytes = serde_json::to_vec(value)?;
    bytes.push(b'\n');
    writer.write_all(&bytes).await?;
    Ok(())
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::whatsapp::Media;

    #[test]
    fn lines_read_as_documented() {
        let request: Request<SessionCall> = serde_json::from_str(
            r#"{"id":3,"op":"send_text","to":"60123","message_id":"M1","text":"hi"}"#,
        )
        .unwrap();
        assert_eq!(request.id, 3);
        assert!(matches!(request.call, SessionCall::SendText { .. }));
        let reply = ServerLine::Reply(Reply {
            re: 3,
            outcome: Outcome::Err(ConnectorError::RateLimited { retry_after_ms: 5 }),
        });
        let text = serde_json::to_string(&reply).unwrap();
        assert_eq!(
            text,
            r#"{"reply":{"re":3,"err":{"code":"rate_limited","detail":{"retry_after_ms":5}}}}"#
        );
        assert_eq!(serde_json::from_str::<ServerLine>(&text).unwrap(), reply);
        let ok: ServerLine = serde_json::from_str(r#"{"reply":{"re":0,"ok":null}}"#).unwrap();
        assert_eq!(
            ok,
            ServerLine::Reply(Reply {
                re: 0,
                outcome: Outcome::Ok(serde_json::Value::Null)
            })
        );
        assert_eq!(
            serde_json::to_string(&ServerLine::Closed).unwrap(),
            r#""closed""#
        );
    }

    #[test]
    fn events_round_trip_with_media_as_base64() {
        let event = ConnectorEvent::Message(Box::new(crate::whatsapp::WaMessage {
            id: "M".into(),
            chat: "123456789012345@lid".into(),
            sender: "123456789012345@lid".into(),
            sender_alt: Some("60123456789@s.whatsapp.net".into()),
            chat_alt: Some("60123456789@s.whatsapp.net".into()),
            push_name: None,
            from_me: false,
            kind: crate::whatsapp::MessageKind::Document,
            text: None,
            media: Some(Media::bytes("application/pdf", vec![1, 2, 3])),
            file_name: Some("price list.pdf".into()),
            location: Some(crate::whatsapp::Location {
                latitude: 3.139,
                longitude: 101.6869,
                name: Some("KLCC".into()),
            }),
            contact: Some(crate::whatsapp::ContactCard {
                display_name: "Aisyah".into(),
                vcard: "BEGIN:VCARD\nEND:VCARD".into(),
            }),
            quoted: Some(crate::whatsapp::Quote {
                id: "Q".into(),
                ..Default::default()
            }),
            group_name: None,
            timestamp: chrono::Utc::now(),
        }));
        let text = serde_json::to_string(&ServerLine::Event(event.clone())).unwrap();
        assert!(text.contains(r#""data":"AQID""#), "{text}");
        assert_eq!(
            serde_json::from_str::<ServerLine>(&text).unwrap(),
            ServerLine::Event(event)
        );
    }

    #[tokio::test]
    async fn long_and_unterminated_lines_are_refused() {
        let mut line = String::new();
        let mut ok: &[u8] = b"{\"op\":\"control\"}\n";
        let hello: Option<Hello> = read_json(&mut ok, &mut line).await.unwrap();
        assert_eq!(hello, Some(Hello::Control));
        let mut cut: &[u8] = b"{\"op\"";
        assert!(matches!(
            read_line(&mut cut, &mut line).await,
            Err(ProtocolError::BadLine)
        ));
        let long = vec![b'x'; MAX_LINE_BYTES + 10];
        let mut long: &[u8] = &long;
        assert!(matches!(
            read_line(&mut long, &mut line).await,
            Err(ProtocolError::BadLine)
        ));
        let mut empty: &[u8] = b"";
        assert!(!read_line(&mut empty, &mut line).await.unwrap());
    }
}

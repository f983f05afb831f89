//! The WebSocket protocol's client operations and server control frames (event frames are built
//! by the hub). See docs/websocket.md.

use serde::{Deserialize, Serialize};

/// Close code for a subscriber that cannot keep up (RFC 6455 "try again later").
pub const CLOSE_TRY_AGAIN_LATER: u16 = 1013;

/// Close code for a session whose credential no longer holds (revoked token, signed out,
/// disabled or deleted user, changed role or devices) or that reached `ws.max_lifetime_secs`.
pub const CLOSE_REAUTHENTICATE: u16 = 4401;

/// What a client may send.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum ClientOp {
    /// Start receiving these topics.
    Subscribe {
        /// Topic names.
        topics: Vec<String>,
    },
    /// Stop receiving these topics.
    Unsubscribe {
        /// Topic names.
        topics: Vec<String>,
    },
    /// Application-level ping; answered with `PONG`.
    Ping,
}

/// Control frames the server sends besides events.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerFrame {
    /// Topics now subscribed (after a subscribe).
    Subscribed {
        /// Every topic the session holds.
        topics: Vec<String>,
    },
    /// Topics left.
    Unsubscribed {
        /// The topics removed.
        topics: Vec<String>,
    },
    /// Answer to `{"op":"ping"}`.
    Pong,
    /// A request could not be honoured; the connection stays open.
    Error {
        /// Code and message.
        error: ErrorPayload,
        /// The topic concerned, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
    },
}

/// Code and message of an error frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorPayload {
    /// snake_case code.
    pub code: &'static str,
    /// Explanation.
    pub message: String,
}

impl ServerFrame {
    /// An error frame.
    pub fn error(code: &'static str, message: impl Into<String>, topic: Option<String>) -> Self {
        ServerFrame::Error {
            error: ErrorPayload {
                code,
                message: message.into(),
            },
            topic,
        }
    }

    /// As JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ops_parse_and_frames_render() {
        let op: ClientOp =
            serde_json::from_str(r#"{"op":"subscribe","topics":["device-status"]}"#).unwrap();
        assert_eq!(
            op,
            ClientOp::Subscribe {
                topics: vec!["device-status".into()]
            }
        );
        assert_eq!(
            serde_json::from_str::<ClientOp>(r#"{"op":"ping"}"#).unwrap(),
            ClientOp::Ping
        );
        assert!(serde_json::from_str::<ClientOp>(r#"{"op":"shout"}"#).is_err());
        assert_eq!(ServerFrame::Pong.to_json(), r#"{"event":"PONG"}"#);
        let error =
            ServerFrame::error("forbidden_topic", "no", Some("messages/1".into())).to_json();
        assert_eq!(
            error,
            r#"{"event":"ERROR","error":{"code":"forbidden_topic","message":"no"},"topic":"messages/1"}"#
        );
    }
}

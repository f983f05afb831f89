//! Who this node is: its name (stable across restarts, so a restarted node takes its own leases
//! back at once), the address other nodes forward device commands to, and a random incarnation
//! per process.

use crate::config::Settings;

/// This node as it registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    /// `cluster.node_id`, or `<host name>-<port>`.
    pub id: String,
    /// `cluster.advertise_url`, or `http://<host name or 127.0.0.1>:<port>`.
    pub address: String,
    /// Random per process.
    pub incarnation: String,
}

impl NodeIdentity {
    /// The identity `settings` give a daemon listening on `port`.
    pub fn from_settings(settings: &Settings, port: u16) -> Self {
        let host = host_name();
        let id = match settings.cluster.node_id.as_str() {
            "" => format!("{host}-{port}"),
            id => id.to_owned(),
        };
        let address = match settings.cluster.advertise_url.as_str() {
            "" if is_loopback(&settings.server.host) => format!("http://127.0.0.1:{port}"),
            "" => format!("http://{host}:{port}"),
            url => url.trim_end_matches('/').to_owned(),
        };
        Self {
            id,
            address,
            incarnation: uuid::Uuid::new_v4().simple().to_string(),
        }
    }
}

/// The machine's host name, reduced to the characters a node name may hold.
fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .take(60)
        .collect();
    if name.is_empty() {
        "node".into()
    } else {
        name
    }
}

/// Whether the listener's host is a loopback address (then so is the advertised one).
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn names_and_addresses_come_from_settings_or_the_host() {
        let cli = crate::cli::Cli::try_parse_from(["wafleet"]).unwrap();
        let none = std::collections::HashMap::new();
        let mut settings =
            Settings::load_from(&cli, std::path::Path::new("/nonexistent"), &none).unwrap();
        settings.server.host = "127.0.0.1".into();
        let node = NodeIdentity::from_settings(&settings, 8080);
        assert!(node.id.ends_with("-8080"), "{node:?}");
        assert_eq!(node.address, "http://127.0.0.1:8080");
        settings.cluster.node_id = "n1".into();
        settings.cluster.advertise_url = "http://10.0.0.5:3000/".into();
        let other = NodeIdentity::from_settings(&settings, 8080);
        assert_eq!(
            (other.id.as_str(), other.address.as_str()),
            ("n1", "http://10.0.0.5:3000")
        );
        assert_ne!(node.incarnation, other.incarnation);
    }
}

//! The SSRF guard: which URLs an endpoint may have and which addresses a delivery may reach.
//!
//! Checked twice: when an endpoint is saved ([`check_url`]: scheme, host, no credentials, no
//! private address literal, no `localhost`) and when a delivery connects ([`Resolver`]: every
//! address the host resolves to must be public), so a name that later resolves inside the
//! network (DNS rebinding) is still refused. Redirects are never followed (the client is built
//! with none), so a public receiver cannot bounce a delivery inside either.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

/// Longest endpoint URL, in bytes.
pub const MAX_URL_BYTES: usize = 2_048;

/// Why an endpoint URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// Not a URL at all, too long, or without a host.
    #[error("url: {0}")]
    Invalid(String),
    /// Not http or https.
    #[error("url: the scheme must be http or https, not {0:?}")]
    Scheme(String),
    /// Credentials in the URL would be logged and shown; receivers check the signature.
    #[error("url: must not carry a user name or password (receivers check the signature)")]
    Credentials,
    /// A private, loopback, link-local or otherwise internal target.
    #[error("url: {0} is a private, loopback or link-local address; set webhooks.allow_private_targets to allow it")]
    Private(String),
}

/// Checks an endpoint URL; `allow_private` lets internal targets through.
pub fn check_url(raw: &str, allow_private: bool) -> Result<Url, GuardError> {
    let raw = raw.trim();
    if raw.len() > MAX_URL_BYTES {
        return Err(GuardError::Invalid(format!(
            "must be at most {MAX_URL_BYTES} bytes"
        )));
    }
    let url = Url::parse(raw).map_err(|e| GuardError::Invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(GuardError::Scheme(url.scheme().to_string()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(GuardError::Credentials);
    }
    let host = url
        .host()
        .ok_or_else(|| GuardError::Invalid("has no host".into()))?;
    if !allow_private {
        match host {
            Host::Ipv4(ip) if !is_public(IpAddr::V4(ip)) => {
                return Err(GuardError::Private(ip.to_string()))
            }
            Host::Ipv6(ip) if !is_public(IpAddr::V6(ip)) => {
                return Err(GuardError::Private(ip.to_string()))
            }
            Host::Domain(name) if is_local_name(name) => {
                return Err(GuardError::Private(name.to_string()))
            }
            _ => {}
        }
    }
    Ok(url)
}

/// Names that always mean this machine or its network.
fn is_local_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.ends_with(".local")
        || name.ends_with(".internal")
}

/// Whether an address is on the public internet: not loopback, private, link-local, shared
/// (CGNAT), unspecified, multicast, broadcast, documentation, or IPv4 mapped into one of those.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            is_public_v6(v6)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10: carrier-grade NAT, often the provider's internal network.
        || (a == 100 && (64..128).contains(&b))
        // 198.18.0.0/15: benchmarking; 240.0.0.0/4: reserved.
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local, 2001:db8::/32 documentation.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8))
}

/// Resolves delivery hosts and keeps only public addresses (all of them, unless private
/// targets are allowed); a host with none left fails to connect with a clear error.
#[derive(Debug, Clone, Copy)]
pub struct Resolver {
    /// Let internal addresses through.
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| allow_private || is_public(addr.ip()))
                .collect();
            if found.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> =
                    format!("{host} resolves to no public address (private targets are refused)")
                        .into();
                return Err(refused);
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_targets_pass() {
        for url in [
            "https://hooks.example.com/wafleet",
            "http://93.184.216.34:8080/in",
            "https://[2606:2800:220:1:248:1893:25c8:1946]/x",
        ] {
            assert!(check_url(url, false).is_ok(), "{url}");
        }
    }

    #[test]
    fn internal_targets_schemes_and_credentials_are_refused() {
        for url in [
            "http://127.0.0.1/x",
            "http://10.1.2.3/x",
            "http://172.16.0.1/x",
            "http://192.168.1.1/x",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/x",
            "http://0.0.0.0/x",
            "http://[::1]/x",
            "http://[fe80::1]/x",
            "http://[fd00::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://localhost:8080/x",
            "http://api.localhost/x",
            "http://metadata.google.internal/x",
        ] {
            assert!(
                matches!(check_url(url, false), Err(GuardError::Private(_))),
                "{url}"
            );
            assert!(check_url(url, true).is_ok(), "{url} allowed");
        }
        assert!(matches!(
            check_url("ftp://example.com/x", false),
            Err(GuardError::Scheme(_))
        ));
        assert!(matches!(
            check_url("file:///etc/passwd", true),
            Err(GuardError::Scheme(_))
        ));
        assert!(matches!(
            check_url("https://user:pw@example.com/", false),
            Err(GuardError::Credentials)
        ));
        assert!(matches!(
            check_url("not a url", false),
            Err(GuardError::Invalid(_))
        ));
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES));
        assert!(matches!(
            check_url(&long, false),
            Err(GuardError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_that_resolve_inside() {
        use reqwest::dns::Resolve;
        use std::str::FromStr;
        let name = |n: &str| reqwest::dns::Name::from_str(n).unwrap_or_else(|_| unreachable!());
        let refused = Resolver {
            allow_private: false,
        }
        .resolve(name("localhost"))
        .await;
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("no public address"), "{message}");
        let allowed = Resolver {
            allow_private: true,
        }
        .resolve(name("localhost"))
        .await;
        assert!(allowed.is_ok_and(|mut addrs| addrs.next().is_some()));
    }
}

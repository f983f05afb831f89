//! TLS for the connections the daemon opens itself (PostgreSQL and Redis), over rustls with the
//! `ring` provider.
//!
//! PostgreSQL follows libpq: the URL's `sslmode` (`disable`, `prefer` — libpq's default —,
//! `require`, `verify-ca`, `verify-full`) and `sslrootcert` (a PEM file, or `system` for the
//! system's roots, which as in libpq requires `verify-full` and makes it the default). As in
//! libpq, `require` with an `sslrootcert` file checks the chain like `verify-ca`; `verify-*`
//! without one trusts the system's roots. Redis: `rediss://` checks chain and host name against
//! the system's roots or `redis.tls_ca_file` (`#insecure` at the end of the URL skips both, as in
//! the redis crate).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// Makes `ring` the process's rustls provider (idempotent). Called before any TLS connection,
/// so crates that build their own rustls configuration (the redis client) find it too.
pub fn install_crypto_provider() {
    // Err only when a provider is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Encryption only: any certificate is accepted (libpq's `prefer` and `require`).
    Nothing,
    /// The chain must lead to a trusted root; the host name is not compared (`verify-ca`).
    Chain,
    /// Chain and host name (`verify-full`, `rediss://`).
    ChainAndName,
}

/// Where the trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The system's certificate store (ca-certificates on Debian).
    System,
    /// A PEM file of one or more CA certificates.
    File(PathBuf),
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, unverified; plain otherwise.
    Prefer,
    /// TLS or no connection; unverified unless an `sslrootcert` file is given.
    Require,
    /// TLS with a trusted chain.
    VerifyCa,
    /// TLS with a trusted chain issued for the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, String> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                "sslmode={other:?} is not one of disable, prefer, require, verify-ca, verify-full"
            ))
            }
        })
    }
}

/// The TLS part of a `postgres://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTls {
    /// The mode asked for (libpq's default `prefer` when absent).
    pub mode: SslMode,
    /// `sslrootcert`, or the system's roots.
    pub roots: Roots,
    /// Whether `sslrootcert` named a file (turns `require` into a chain check, as in libpq).
    root_file_given: bool,
}

impl PgTls {
    /// Takes `sslmode` and `sslrootcert` out of a PostgreSQL URL (the driver knows neither the
    /// `verify-*` modes nor `sslrootcert`) and returns the URL without them. Other libpq TLS
    /// options (client certificates) are refused rather than ignored.
    pub fn split_url(raw: &str) -> Result<(String, PgTls), String> {
        let mut url = url::Url::parse(raw).map_err(|e| format!("not a valid URL: {e}"))?;
        let mut mode = None;
        let mut root = None;
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "sslmode" => mode = Some(SslMode::parse(&value)?),
                "sslrootcert" => root = Some(value.into_owned()),
                "sslcert" | "sslkey" | "sslpassword" | "sslcrl" => {
                    return Err(format!(
                        "{key} is not supported (client certificates, CRLs)"
                    ))
                }
                _ => {}
            }
        }
        // The other parameters stay exactly as written (re-encoding would turn `%20` into `+`,
        // which the driver does not read as a space).
        let kept: Vec<&str> = url
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|pair| {
                let key = pair.split('=').next().unwrap_or_default();
                !pair.is_empty() && key != "sslmode" && key != "sslrootcert"
            })
            .collect();
        let kept = (!kept.is_empty()).then(|| kept.join("&"));
        let system = root.as_deref() == Some("system");
        let mode = match (mode, system) {
            (None, true) => SslMode::VerifyFull,
            (Some(mode), true) if mode != SslMode::VerifyFull => {
                return Err("sslrootcert=system needs sslmode=verify-full".into())
            }
            (mode, _) => mode.unwrap_or(SslMode::Prefer),
        };
        let roots = match root {
            Some(path) if !system => Roots::File(PathBuf::from(path)),
            _ => Roots::System,
        };
        url.set_query(kept.as_deref());
        let tls = PgTls {
            mode,
            root_file_given: matches!(roots, Roots::File(_)),
            roots,
        };
        Ok((url.to_string(), tls))
    }

    /// What is checked of the server's certificate.
    pub fn verify(&self) -> Verify {
        match self.mode {
            SslMode::Disable | SslMode::Prefer => Verify::Nothing,
            SslMode::Require if self.root_file_given => Verify::Chain,
            SslMode::Require => Verify::Nothing,
            SslMode::VerifyCa => Verify::Chain,
            SslMode::VerifyFull => Verify::ChainAndName,
        }
    }

    /// The rustls configuration, or `None` for `disable`. Loads the roots (once per call: build
    /// it once per pool).
    pub fn client_config(&self) -> Result<Option<ClientConfig>, String> {
        if self.mode == SslMode::Disable {
            return Ok(None);
        }
        client_config(self.verify(), &self.roots).map(Some)
    }
}

/// A rustls client configuration checking `verify` against `roots` (not loaded when nothing is
/// verified).
pub fn client_config(verify: Verify, roots: &Roots) -> Result<ClientConfig, String> {
    install_crypto_provider();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let chain = match verify {
        Verify::ChainAndName => {
            return Ok(builder
                .with_root_certificates(load_roots(roots)?)
                .with_no_client_auth())
        }
        Verify::Chain => Some(
            WebPkiServerVerifier::builder_with_provider(
                Arc::new(load_roots(roots)?),
                provider.clone(),
            )
            .build()
            .map_err(|e| e.to_string())?,
        ),
        Verify::Nothing => None,
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Relaxed {
            chain,
            algorithms: provider.signature_verification_algorithms,
        }))
        .with_no_client_auth();
    Ok(config)
}

/// The trusted roots: every certificate of a PEM file, or the system's store.
fn load_roots(roots: &Roots) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            let certs = read_pem_certificates(path)?;
            let (_, unusable) = store.add_parsable_certificates(certs);
            if store.is_empty() {
                return Err(format!(
                    "{}: no usable CA certificate ({unusable} unparsable)",
                    path.display()
                ));
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err("no system root certificates found (install ca-certificates, or name a CA file)".into());
            }
        }
    }
    Ok(store)
}

/// The certificates of a PEM file, or why it cannot be used.
pub fn read_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

/// The checks rustls does not offer by itself: `verify-ca` (a trusted chain, any name) with a
/// chain verifier, `prefer` / `require` (any certificate) without one. The handshake's
/// signatures are checked either way, so the session is encrypted to whoever holds the
/// presented key.
#[derive(Debug)]
struct Relaxed {
    /// The chain check; `None` accepts any certificate.
    chain: Option<Arc<WebPkiServerVerifier>>,
    /// The provider's signature algorithms.
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki checks the chain before the name, so a name error means the chain was good.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> Result<(String, PgTls), String> {
        PgTls::split_url(url)
    }

    #[test]
    fn libpq_defaults_and_modes() {
        let (url, tls) = split("postgres://u:p@db.example.com:5432/app").unwrap();
        assert_eq!(url, "postgres://u:p@db.example.com:5432/app");
        assert_eq!(tls.mode, SslMode::Prefer);
        assert_eq!(tls.verify(), Verify::Nothing);

        let (url, tls) =
            split("postgres://u@h/app?application_name=x&sslmode=require&connect_timeout=5")
                .unwrap();
        assert_eq!(
            url,
            "postgres://u@h/app?application_name=x&connect_timeout=5"
        );
        assert_eq!(tls.verify(), Verify::Nothing);

        let (_, tls) = split("postgres://u@h/app?sslmode=require&sslrootcert=/ca.pem").unwrap();
        assert_eq!(
            tls.verify(),
            Verify::Chain,
            "require + root file = verify-ca"
        );
        assert_eq!(tls.roots, Roots::File("/ca.pem".into()));

        let (_, tls) = split("postgres://u@h/app?sslmode=verify-ca").unwrap();
        assert_eq!((tls.verify(), tls.roots), (Verify::Chain, Roots::System));

        let (_, tls) = split("postgres://u@h/app?sslmode=verify-full").unwrap();
        assert_eq!(tls.verify(), Verify::ChainAndName);

        let (_, tls) = split("postgres://u@h/app?sslrootcert=system").unwrap();
        assert_eq!(
            (tls.mode, tls.roots),
            (SslMode::VerifyFull, Roots::System),
            "sslrootcert=system defaults to verify-full"
        );
        assert!(split("postgres://u@h/app?sslmode=disable")
            .unwrap()
            .1
            .client_config()
            .unwrap()
            .is_none());
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        let err = split("postgres://u@h/app?sslmode=verify_full").unwrap_err();
        assert!(err.contains("verify-full"), "{err}");
        let err = split("postgres://u@h/app?sslmode=require&sslrootcert=system").unwrap_err();
        assert!(err.contains("verify-full"), "{err}");
        let err = split("postgres://u@h/app?sslcert=/c.pem").unwrap_err();
        assert!(err.contains("sslcert"), "{err}");
        let (_, tls) =
            split("postgres://u@h/app?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
                .unwrap();
        let err = tls.client_config().unwrap_err();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}

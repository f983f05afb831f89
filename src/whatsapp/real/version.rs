//! [`AppVersion`]: which WhatsApp Web version the real clients announce.
//!
//! whatsapp-rust fetches `web.whatsapp.com/sw.js` on connect unless given a version. We give it
//! one on every connect: the pinned `whatsapp.version`, or else a version fetched once for the
//! whole daemon and refreshed every `version_refresh_hours` (the next connect after that
//! fetches again, so a running daemon follows WhatsApp without a restart). A failed fetch falls
//! back to the last good version (or the one the library was built with) and is retried after
//! [`RETRY_AFTER_FAILURE`], so 3,000 connects never mean 3,000 fetches.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use whatsapp_rust::http::HttpClient;

/// The version whatsapp-rust 0.7.0 ships as its default (`wacore::store::Device::new`).
pub const FALLBACK_VERSION: (u32, u32, u32) = (2, 3000, 1_042_742_319);
/// A failed fetch is retried no sooner than this.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(600);
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The version source shared by every connect of a daemon.
pub struct AppVersion {
    /// Set by configuration: never fetch.
    pinned: Option<(u32, u32, u32)>,
    /// How long a fetched version stays current.
    refresh: Duration,
    /// Where versions are fetched from.
    http: Arc<dyn HttpClient>,
    /// The last fetched version and when to fetch next.
    state: Mutex<Fetched>,
}

/// What the last fetch left.
#[derive(Debug, Default)]
struct Fetched {
    /// The last good version.
    version: Option<(u32, u32, u32)>,
    /// Fetch again at or after this instant (`None`: never fetched).
    next_fetch: Option<Instant>,
}

impl std::fmt::Debug for AppVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppVersion")
            .field("pinned", &self.pinned)
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

impl AppVersion {
    /// A source that announces `pinned` when set, else fetches with `http` every `refresh`.
    pub fn new(
        pinned: Option<(u32, u32, u32)>,
        refresh: Duration,
        http: Arc<dyn HttpClient>,
    ) -> Self {
        Self {
            pinned,
            refresh,
            http,
            state: Mutex::new(Fetched::default()),
        }
    }

    /// The version for a connect starting now; fetches when the last one is due for a refresh.
    /// Never fails: a failed fetch yields the last good or the built-in version.
    pub async fn current(&self) -> (u32, u32, u32) {
        if let Some(pinned) = self.pinned {
            return pinned;
        }
        let mut state = self.state.lock().await;
        let due = state.next_fetch.is_none_or(|at| Instant::now() >= at);
        if due {
            let fetched = tokio::time::timeout(
                FETCH_TIMEOUT,
                whatsapp_rust::version::fetch_latest_app_version(&self.http),
            )
            .await;
            match fetched {
                Ok(Ok(version)) => {
                    tracing::info!(?version, "fetched the current WhatsApp Web version");
                    state.version = Some(version);
                    state.next_fetch = Some(Instant::now() + self.refresh);
                }
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "cannot fetch the WhatsApp Web version; using the last known one");
                    state.next_fetch = Some(Instant::now() + RETRY_AFTER_FAILURE);
                }
                Err(_) => {
                    tracing::warn!(
                        "fetching the WhatsApp Web version timed out; using the last known one"
                    );
                    state.next_fetch = Some(Instant::now() + RETRY_AFTER_FAILURE);
                }
            }
        }
        state.version.unwrap_or(FALLBACK_VERSION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use whatsapp_rust::http::{HttpRequest, HttpResponse};

    /// Answers like web.whatsapp.com/sw.js with a given revision, or fails; counts calls.
    struct FakeSw {
        revision: Option<u64>,
        calls: AtomicUsize,
    }

    #[whatsapp_rust::async_trait]
    impl HttpClient for FakeSw {
        async fn execute(
            &self,
            _request: HttpRequest,
        ) -> whatsapp_rust::anyhow::Result<HttpResponse> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match self.revision {
                Some(rev) => Ok(HttpResponse {
                    status_code: 200,
                    body: format!(
                        r#"self.__swData=JSON.parse(/*BTDS*/"{{\"dynamic_data\":{{\"SiteData\":{{\"server_revision\":{rev},\"client_revision\":{rev}}}}}}}");"#
                    )
                    .into_bytes(),
                }),
                None => Err(whatsapp_rust::anyhow::anyhow!("offline")),
            }
        }
    }

    #[tokio::test]
    async fn pinned_never_fetches_and_fetched_is_cached_until_due() {
        let http = Arc::new(FakeSw {
            revision: Some(1_026_131_876),
            calls: AtomicUsize::new(0),
        });
        let pinned = AppVersion::new(Some((2, 3000, 7)), Duration::from_secs(3600), http.clone());
        assert_eq!(pinned.current().await, (2, 3000, 7));
        assert_eq!(http.calls.load(Ordering::SeqCst), 0);

        let fetched = AppVersion::new(None, Duration::from_secs(3600), http.clone());
        assert_eq!(fetched.current().await, (2, 3000, 1_026_131_876));
        assert_eq!(fetched.current().await, (2, 3000, 1_026_131_876));
        assert_eq!(
            http.calls.load(Ordering::SeqCst),
            1,
            "one fetch serves many connects"
        );

        let refreshing = AppVersion::new(None, Duration::ZERO, http.clone());
        refreshing.current().await;
        refreshing.current().await;
        assert_eq!(
            http.calls.load(Ordering::SeqCst),
            3,
            "a due version is fetched again"
        );
    }

    #[tokio::test]
    async fn a_failed_fetch_falls_back_and_waits_before_retrying() {
        let http = Arc::new(FakeSw {
            revision: None,
            calls: AtomicUsize::new(0),
        });
        let version = AppVersion::new(None, Duration::ZERO, http.clone());
        assert_eq!(version.current().await, FALLBACK_VERSION);
        assert_eq!(version.current().await, FALLBACK_VERSION);
        assert_eq!(http.calls.load(Ordering::SeqCst), 1);
    }
}

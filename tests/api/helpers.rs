//! `spawn_app` and friends: a fresh database per test, the real application on port 0, an HTTP
//! client, and `wait_until` for conditions instead of sleeps.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use clap::Parser;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use wafleet::cli::Cli;
use wafleet::config::Settings;
use wafleet::db::Db;
use wafleet::startup::Application;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn(TestApp)` once per backend, as `<name>::sqlite` and
/// `<name>::postgres`. The PostgreSQL variant is skipped (and says so) without `DATABASE_URL`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[actix_web::test]
            async fn sqlite() {
                let app = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await.unwrap();
                super::$name(app).await
            }
            #[actix_web::test]
            async fn postgres() {
                match $crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await {
                    Some(app) => super::$name(app).await,
                    None => eprintln!("skipped {}::postgres: DATABASE_URL is not set", stringify!($name)),
                }
            }
        }
    )*};
}

/// A fresh database, removed when dropped.
pub struct TestDatabase {
    /// The URL to give the daemon.
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    /// A new empty database on `backend`; `None` for PostgreSQL when `DATABASE_URL` is unset.
    pub async fn create(backend: Backend) -> Option<TestDatabase> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("wafleet.db").display());
                Some(TestDatabase {
                    url,
                    cleanup: Cleanup::Sqlite(dir),
                })
            }
            Backend::Postgres => {
                let admin_url = std::env::var("DATABASE_URL").ok()?;
                let name = format!("wafleet_t_{}", uuid::Uuid::new_v4().simple());
                let mut conn = AsyncPgConnection::establish(&admin_url).await.unwrap();
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let mut url = url::Url::parse(&admin_url).unwrap();
                url.set_path(&name);
                Some(TestDatabase {
                    url: url.to_string(),
                    cleanup: Cleanup::Postgres { admin_url, name },
                })
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside the test's runtime; a plain thread with its own runtime may block.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    if let Ok(mut conn) = AsyncPgConnection::establish(&admin_url).await {
                        let _ = diesel::sql_query(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        ))
                        .execute(&mut conn)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Settings as a bare `wafleet` would load them, plus `extra` environment entries.
pub fn settings_with(extra: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = [
        ("WAFLEET__SERVER__HOST", "127.0.0.1"),
        ("WAFLEET__SERVER__PORT", "0"),
        ("WAFLEET__SERVER__WORKERS", "1"),
        ("WAFLEET__SERVER__SHUTDOWN_TIMEOUT_SECS", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let filter = if std::env::var_os("TEST_LOG").is_some() {
        "info"
    } else {
        "off"
    };
    env.insert("RUST_LOG".into(), filter.into());
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    let cli = Cli::parse_from(["wafleet"]);
    let config_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    Settings::load_from(&cli, &config_dir, &env).unwrap()
}

/// The running daemon of one test.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// A client that keeps cookies.
    pub client: reqwest::Client,
    /// The daemon's database handle, to look behind the API.
    pub db: Db,
    /// The settings the daemon runs with.
    pub settings: Settings,
    handle: ServerHandle,
    // Dropped last: the database outlives the server.
    _database: TestDatabase,
}

impl TestApp {
    /// `address` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // stop() sends its command at once; the returned future only waits for completion.
        drop(self.handle.stop(false));
    }
}

/// Starts the real application on a fresh database of `backend` and a random port.
/// `None` when the backend is not configured (PostgreSQL without `DATABASE_URL`).
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, &[]).await
}

/// [`spawn_app`] with extra settings as environment entries.
pub async fn spawn_app_with(backend: Backend, extra: &[(&str, &str)]) -> Option<TestApp> {
    let database = TestDatabase::create(backend).await?;
    let mut entries = vec![("DB_URI", database.url.as_str())];
    entries.extend_from_slice(extra);
    let settings = settings_with(&entries);
    wafleet::telemetry::init(&settings.log);
    let application = Application::build(settings.clone()).await.unwrap();
    let address = format!("http://127.0.0.1:{}", application.port());
    let handle = application.handle();
    let db = application.state().db.clone();
    actix_web::rt::spawn(application.run_until_stopped());
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    Some(TestApp {
        address,
        client,
        db,
        settings,
        handle,
        _database: database,
    })
}

/// Polls `check` until it returns `Some`, failing the test after `timeout`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

//! `spawn_app` and friends: a fresh database per test, the real application on port 0, an HTTP
//! client, and `wait_until` for conditions instead of sleeps.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use clap::Parser;
use secrecy::SecretString;
use wafleet::cli::Cli;
use wafleet::config::Settings;
use wafleet::db::scratch::ScratchDatabase;
use wafleet::db::Db;
use wafleet::startup::Application;

/// The admin every test app starts with.
pub const ADMIN_EMAIL: &str = "admin@test.local";
/// Its password.
pub const ADMIN_PASSWORD: &str = "admin-password-1";
/// The password of users made by [`TestApp::create_user`].
pub const USER_PASSWORD: &str = "user-password-1";

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
    ($($name:ident),* $(,)?) => {
        $crate::both_backends!(with &[]; $($name),*);
    };
    // `with SETTINGS;` runs the tests with extra settings (pairs of env names and values).
    (with $extra:expr; $($name:ident),* $(,)?) => {$(
        mod $name {
            #[actix_web::test]
            async fn sqlite() {
                let app = $crate::helpers::spawn_app_with($crate::helpers::Backend::Sqlite, $extra).await.unwrap();
                super::$name(app).await
            }
            #[actix_web::test]
            async fn postgres() {
                match $crate::helpers::spawn_app_with($crate::helpers::Backend::Postgres, $extra).await {
                    Some(app) => super::$name(app).await,
                    None => eprintln!("skipped {}::postgres: DATABASE_URL is not set", stringify!($name)),
                }
            }
        }
    )*};
}

/// A fresh database, removed when dropped; derefs to the [`ScratchDatabase`] (its `url`).
pub struct TestDatabase {
    scratch: ScratchDatabase,
}

impl std::ops::Deref for TestDatabase {
    type Target = ScratchDatabase;

    fn deref(&self) -> &ScratchDatabase {
        &self.scratch
    }
}

impl TestDatabase {
    /// A new empty database on `backend`; `None` for PostgreSQL when `DATABASE_URL` is unset.
    pub async fn create(backend: Backend) -> Option<TestDatabase> {
        let scratch = match backend {
            Backend::Sqlite => ScratchDatabase::sqlite("wafleet-test").unwrap(),
            Backend::Postgres => {
                let admin_url = SecretString::from(std::env::var("DATABASE_URL").ok()?);
                ScratchDatabase::postgres(&admin_url, "wafleet_t")
                    .await
                    .unwrap()
            }
        };
        Some(TestDatabase { scratch })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = self.scratch.remove_blocking();
    }
}

/// Settings as a bare `wafleet` would load them, plus `extra` environment entries.
pub fn settings_with(extra: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = [
        ("WAFLEET__SERVER__HOST", "127.0.0.1"),
        ("WAFLEET__SERVER__PORT", "0"),
        ("WAFLEET__SERVER__WORKERS", "1"),
        ("WAFLEET__SERVER__SHUTDOWN_TIMEOUT_SECS", "1"),
        ("WAFLEET__ADMIN__EMAIL", ADMIN_EMAIL),
        ("WAFLEET__ADMIN__PASSWORD", ADMIN_PASSWORD),
        // reqwest's cookie store keeps Secure cookies off plain http; one test turns it on.
        ("WAFLEET__AUTH__SECURE_COOKIES", "false"),
        // The daemon's default is the real connector; tests run on the simulator.
        ("WAFLEET__WHATSAPP__CONNECTOR", "sim"),
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
    /// The port of the `metrics.listen` listener, when the test configured one.
    pub metrics_port: Option<u16>,
    /// A client that keeps cookies.
    pub client: reqwest::Client,
    /// The daemon's database handle, to look behind the API.
    pub db: Db,
    /// The settings the daemon runs with.
    pub settings: Settings,
    /// The daemon's shared state (fleet, metrics, …).
    pub state: actix_web::web::Data<wafleet::web::AppState>,
    handle: ServerHandle,
    // Dropped last: the database outlives the server (None when the caller owns it).
    _database: Option<TestDatabase>,
    _media: tempfile::TempDir,
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

impl TestApp {
    /// GET `/metrics` as a scraper with the metrics token.
    pub async fn metrics(&self) -> reqwest::Response {
        self.client
            .get(self.url("/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // stop() sends its command at once; the returned future only waits for completion.
        drop(self.handle.stop(false));
    }
}

/// The `metrics.token` every test daemon runs with.
pub const METRICS_TOKEN: &str = "test-metrics-token";

/// Starts the real application on a fresh database of `backend` and a random port.
/// `None` when the backend is not configured (PostgreSQL without `DATABASE_URL`).
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, &[]).await
}

/// [`spawn_app`] with extra settings as environment entries.
pub async fn spawn_app_with(backend: Backend, extra: &[(&str, &str)]) -> Option<TestApp> {
    let database = TestDatabase::create(backend).await?;
    let mut app = spawn_app_on(&database, extra).await;
    app._database = Some(database);
    Some(app)
}

/// Starts the application on a database the caller created (and keeps alive).
pub async fn spawn_app_on(database: &TestDatabase, extra: &[(&str, &str)]) -> TestApp {
    spawn_app_at(&database.url, extra).await
}

/// Starts the application on the database at `url`, which the caller keeps alive.
pub async fn spawn_app_at(url: &str, extra: &[(&str, &str)]) -> TestApp {
    let media = tempfile::tempdir().unwrap();
    let media_dir = media.path().display().to_string();
    let mut entries = vec![
        ("DB_URI", url),
        ("WAFLEET__CHAT__MEDIA_DIR", media_dir.as_str()),
        ("WAFLEET__METRICS__TOKEN", METRICS_TOKEN),
    ];
    entries.extend_from_slice(extra);
    let settings = settings_with(&entries);
    wafleet::telemetry::init(&settings.log);
    let application = Application::build(settings.clone()).await.unwrap();
    let address = format!("http://127.0.0.1:{}", application.port());
    let metrics_port = application.metrics_port();
    let handle = application.handle();
    let state = application.state();
    let db = state.db.clone();
    actix_web::rt::spawn(application.run_until_stopped());
    let client = new_client();
    TestApp {
        address,
        metrics_port,
        client,
        db,
        settings,
        state,
        handle,
        _database: None,
        _media: media,
    }
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

/// A signed-in user: their own cookie jar and CSRF token.
pub struct UserClient {
    pub client: reqwest::Client,
    pub csrf: String,
    pub base: String,
    pub user_id: i64,
    pub tenant_id: i64,
}

impl UserClient {
    /// A request with the CSRF header set (as the dashboard sends it).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{}", self.base, path))
            .header("x-csrf-token", &self.csrf)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
    }

    /// A device's chat list (default window).
    pub async fn chats(&self, device: i64) -> Vec<serde_json::Value> {
        let list: serde_json::Value = self
            .get(&format!("/api/v1/devices/{device}/chats"))
            .await
            .json()
            .await
            .unwrap();
        list.as_array().cloned().unwrap_or_default()
    }

    /// The newest page of a device's chat with `jid`, newest first (empty while the chat does
    /// not exist).
    pub async fn chat_messages(&self, device: i64, jid: &str) -> Vec<serde_json::Value> {
        let page: serde_json::Value = self
            .get(&format!("/api/v1/devices/{device}/chats/{jid}/messages"))
            .await
            .json()
            .await
            .unwrap();
        page["items"].as_array().cloned().unwrap_or_default()
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.request(method, path).json(body).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.send_json(reqwest::Method::POST, path, body).await
    }
}

/// Signs in to the daemon at `address` (`http://host:port`) and returns the user's client;
/// panics unless the sign-in succeeds.
pub async fn login_at(address: &str, email: &str, password: &str) -> UserClient {
    let client = new_client();
    let response = client
        .post(format!("{address}/api/v1/auth/login"))
        .json(&serde_json::json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "login of {email}");
    let body: serde_json::Value = response.json().await.unwrap();
    let me: serde_json::Value = client
        .get(format!("{address}/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    UserClient {
        client,
        csrf: body["csrf_token"].as_str().unwrap().to_string(),
        base: address.to_string(),
        user_id: me["user"]["id"].as_i64().unwrap(),
        tenant_id: me["tenant"]["id"].as_i64().unwrap(),
    }
}

/// A fresh cookie-keeping client.
pub fn new_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        // Drop a pooled connection long before the server's keep-alive ends it, so a poll after
        // a starved moment never reuses a connection the server is closing (IncompleteMessage).
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

impl TestApp {
    /// Signs in and returns the user's client; panics unless the sign-in succeeds.
    pub async fn login(&self, email: &str, password: &str) -> UserClient {
        login_at(&self.address, email, password).await
    }

    /// Signs in as the bootstrap admin.
    pub async fn admin(&self) -> UserClient {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Creates a tenant with an owner directly in the database and signs the owner in.
    pub async fn new_tenant(&self, name: &str) -> UserClient {
        let tenant = wafleet::auth::store::insert_tenant(&self.db, name, "Asia/Kuala_Lumpur")
            .await
            .unwrap();
        self.create_user(tenant.id, "owner").await
    }

    /// Creates a user of `tenant_id` with `role` and signs them in.
    pub async fn create_user(&self, tenant_id: i64, role: &str) -> UserClient {
        let email = format!("{role}-{}@test.local", uuid::Uuid::new_v4().simple());
        let hasher = wafleet::auth::password::PasswordHasher::new().unwrap();
        let hash = hasher.hash(USER_PASSWORD).await.unwrap();
        let now = chrono::Utc::now().naive_utc();
        wafleet::auth::store::insert_user(
            &self.db,
            wafleet::auth::model::NewUser {
                tenant_id: Some(tenant_id),
                email: &email,
                display_name: role,
                password_hash: &hash,
                role,
                is_active: true,
                created_at: now,
                updated_at: now,
            },
        )
        .await
        .unwrap();
        self.login(&email, USER_PASSWORD).await
    }
}

impl TestApp {
    /// Adds a device named `name` through the API and pairs it on the simulator; returns its id
    /// once the API reports it online.
    pub async fn paired_device(&self, user: &UserClient, name: &str) -> i64 {
        let created: serde_json::Value = user
            .post("/api/v1/devices", &serde_json::json!({ "name": name }))
            .await
            .json()
            .await
            .unwrap();
        let id = created["id"].as_i64().unwrap();
        let sim = self.state.fleet.sim.clone().unwrap();
        let wait = Duration::from_secs(20);
        wait_until("pairing to start", wait, || {
            let sim = sim.clone();
            async move { sim.scan(id).await.ok() }
        })
        .await;
        wait_online(user, id).await;
        id
    }
}

/// Waits until the API reports device `id` online (20 s at most).
pub async fn wait_online(user: &UserClient, id: i64) {
    wait_until(
        "the device to be online",
        Duration::from_secs(20),
        || async {
            let device: serde_json::Value = user
                .get(&format!("/api/v1/devices/{id}"))
                .await
                .json()
                .await
                .ok()?;
            (device["status"] == "online").then_some(())
        },
    )
    .await;
}

/// Held by the tests that load the machine most (real browsers, the multi-process fault
/// harness) so that they run one at a time and do not starve each other's timing on two cores.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits for the heavy-test slot; hold the guard for the test's duration.
pub async fn heavy_test() -> tokio::sync::MutexGuard<'static, ()> {
    HEAVY.lock().await
}

/// Every `.rs` file under `dir`, recursively, appended to `out` (tests that read the sources).
pub fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

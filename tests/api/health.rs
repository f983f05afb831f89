//! `/healthz`, `/readyz`, `/metrics`, request ids and the JSON error shape.

use serde_json::Value;
use wafleet::db::migrate;

use crate::helpers::TestApp;

crate::both_backends!(
    health_and_readiness_answer,
    readiness_fails_while_migrations_are_pending,
    requests_are_counted_in_metrics,
);

async fn health_and_readiness_answer(app: TestApp) {
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ok");

    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], app.db.backend_name());
    let expected = migrate::embedded_versions(app.db.backend_name() == "postgres").unwrap();
    assert_eq!(body["migrations"], expected.len());
}

async fn readiness_fails_while_migrations_are_pending(app: TestApp) {
    let reverted = migrate::revert_all(&app.settings.database).unwrap();
    assert!(reverted > 0);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_ready");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("pending"));

    migrate::run_pending(&app.settings.database).unwrap();
    // A singleton that found no tables (the campaign engine loading its campaigns) restarts
    // and reloads after a short backoff; ready once it has.
    crate::helpers::wait_until(
        "/readyz to be ready",
        std::time::Duration::from_secs(20),
        || async { (app.get("/readyz").await.status() == 200).then_some(()) },
    )
    .await;
}

async fn requests_are_counted_in_metrics(app: TestApp) {
    for _ in 0..3 {
        assert_eq!(app.get("/healthz").await.status(), 200);
    }
    let metrics = app.metrics().await;
    assert_eq!(metrics.status(), 200);
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.text().await.unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("wafleet_http_requests_total") && l.contains("route=\"/healthz\""))
        .unwrap_or_else(|| panic!("no counter for /healthz in:\n{text}"));
    assert!(line.ends_with(" 3"), "{line}");
    assert!(text.contains("wafleet_http_request_duration_seconds_bucket"));
}

#[actix_web::test]
async fn every_response_carries_a_request_id() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let generated = app.get("/healthz").await;
    let id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 32, "a uuid without dashes: {id}");
    let other = app.get("/healthz").await.headers()["x-request-id"].clone();
    assert_ne!(other.to_str().unwrap(), id, "ids are per request");

    let echoed = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "proxy-abc.123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "proxy-abc.123");

    let hostile = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "a b<script>")
        .send()
        .await
        .unwrap();
    assert_ne!(hostile.headers()["x-request-id"], "a b<script>");
}

#[actix_web::test]
async fn unknown_routes_and_bad_input_get_json_errors() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let missing = app.get("/api/v1/no-such-thing").await;
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert!(body["error"]["message"].is_string());

    let missing_asset = app.get("/static/nope.js").await;
    assert_eq!(missing_asset.status(), 404);

    let page = app.get("/").await;
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let css = app.get("/static/app.css").await;
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
}

/// Starts `times` futures made by `start` (given 0, 1, …) and drops each after its first poll
/// (the query is handed to its blocking task, then abandoned, as when a client hangs up).
/// Returns how many were still unfinished when dropped; fails on any query that finished with
/// an error (a cancelled neighbour must not make others fail). One poll, not a zero timeout: a
/// zero-length sleep fires only when the timer driver next turns, and under load the query
/// could finish first every time.
async fn drop_mid_flight<F, Fut, T, E>(times: usize, mut start: F) -> usize
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Debug,
{
    let mut cancelled = 0;
    for n in 0..times {
        match futures::FutureExt::now_or_never(start(n)) {
            None => cancelled += 1,
            Some(Err(err)) => panic!("query {n} failed after cancelled ones: {err:?}"),
            Some(Ok(_)) => {}
        }
    }
    cancelled
}

/// A handler cancelled in the middle of an SQLite query (a client hanging up, a sibling
/// extractor failing) must not panic: actix runs on current-thread runtimes, where diesel-async's
/// default wrapper would call `block_in_place` while dropping the query.
#[actix_web::test]
async fn cancelling_an_sqlite_query_on_an_arbiter_is_safe() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let tenant = wafleet::auth::store::insert_tenant(&app.db, "Acme", "UTC")
        .await
        .unwrap();
    let cancelled = drop_mid_flight(50, |_| {
        wafleet::device::store::insert_device(&app.db, tenant.id, "x")
    })
    .await;
    assert!(cancelled > 0, "no query was cancelled mid-flight");
    assert_eq!(app.get("/readyz").await.status(), 200);
    let (_, total) =
        wafleet::device::store::list_devices(&app.db, tenant.id, &Default::default(), 100, 0)
            .await
            .unwrap();
    assert!(
        total as usize >= 50 - cancelled,
        "completed inserts are kept"
    );
}

/// A chat batch runs on SQLite as one blocking task (`db_batch!`). A caller that stops waiting
/// must not panic the arbiter, and each batch stays all-or-nothing: both of its messages are
/// stored, or neither.
#[actix_web::test]
async fn cancelled_sqlite_batches_are_all_or_nothing() {
    use wafleet::chat::store::{write_batch, ChatWrite, NewMessage};
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let tenant = wafleet::auth::store::insert_tenant(&app.db, "Acme", "UTC")
        .await
        .unwrap();
    let device = wafleet::device::store::insert_device(&app.db, tenant.id, "Sales")
        .await
        .unwrap();
    let now = chrono::Utc::now().naive_utc();
    let message = |n: usize, part: usize| ChatWrite::Message {
        chat_jid: format!("60120000{n:03}@s.whatsapp.net"),
        learned: Vec::new(),
        chat_name: None,
        unread: true,
        row: Box::new(NewMessage {
            tenant_id: tenant.id,
            device_id: device.id,
            chat_id: 0,
            wa_id: format!("BATCH{n}-{part}"),
            sender_jid: format!("60120000{n:03}@s.whatsapp.net"),
            sender_name: None,
            from_me: false,
            body: Some(format!("batch {n} part {part}")),
            media_mime: None,
            media_size: None,
            media_sha256: None,
            status: "received".into(),
            sent_at: now,
            created_at: now,
            kind: "text".into(),
            file_name: None,
            detail: None,
            quoted_id: None,
            quoted_sender: None,
            quoted_text: None,
            media_ref: None,
        }),
        media: None,
    };
    let cancelled = drop_mid_flight(50, |n| {
        write_batch(&app.db, vec![message(n, 1), message(n, 2)])
    })
    .await;
    assert!(cancelled > 0, "no batch was cancelled mid-flight");
    // One more, awaited: the pool still serves, and earlier batches have all finished.
    write_batch(&app.db, vec![message(50, 1), message(50, 2)])
        .await
        .unwrap();
    assert_eq!(app.get("/readyz").await.status(), 200);
    for n in 0..=50 {
        let chat = wafleet::chat::store::get_chat(
            &app.db,
            tenant.id,
            device.id,
            &format!("60120000{n:03}@s.whatsapp.net"),
        )
        .await;
        assert!(n < 50 || chat.is_ok(), "the awaited batch is stored");
        if let Ok(chat) = chat {
            let stored = wafleet::chat::store::list_messages(
                &app.db,
                chat.id,
                wafleet::chat::store::Only::All,
                None,
                10,
            )
            .await
            .unwrap();
            assert_eq!(stored.len(), 2, "batch {n} is whole: {stored:?}");
        }
    }
}

/// `server.keep_alive_secs` closes an idle connection after its response: the server ends it,
/// and a client that keeps connections for less time never sends on a closing one.
#[actix_web::test]
async fn idle_keep_alive_connections_are_closed_after_the_setting() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = crate::helpers::spawn_app_with(
        crate::helpers::Backend::Sqlite,
        &[("WAFLEET__SERVER__KEEP_ALIVE_SECS", "1")],
    )
    .await
    .unwrap();
    let host = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    stream
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut received = Vec::new();
    // Reads the response and then waits for the server to close the idle connection (EOF).
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut received),
    )
    .await
    .expect("the server keeps the idle connection open past its keep-alive")
    .unwrap();
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "closed before the keep-alive ran out: {:?}",
        started.elapsed()
    );
}

#[actix_web::test]
async fn readiness_with_the_database_down_shows_no_raw_error_sqlite() {
    readiness_with_the_database_down_shows_no_raw_error(crate::helpers::Backend::Sqlite).await;
}

#[actix_web::test]
async fn readiness_with_the_database_down_shows_no_raw_error_postgres() {
    readiness_with_the_database_down_shows_no_raw_error(crate::helpers::Backend::Postgres).await;
}

/// Breaks the database under a running daemon (SQLite: its files overwritten with garbage;
/// PostgreSQL: the database dropped): `/readyz` answers 503 with `database: down` and a generic
/// message, never the driver's error text (which goes to the log).
async fn readiness_with_the_database_down_shows_no_raw_error(backend: crate::helpers::Backend) {
    use crate::helpers::{spawn_app_on, TestDatabase};
    let Some(database) = TestDatabase::create(backend).await else {
        eprintln!("skipped: DATABASE_URL is not set");
        return;
    };
    let app = spawn_app_on(&database, &[]).await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    let name = break_database(&database).await;

    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let text = ready.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], "unavailable", "{text}");
    assert_eq!(body["checks"]["database"], "down", "{text}");
    assert_eq!(body["error"]["code"], "not_ready", "{text}");
    // Components that need the database may be reported down too (", down: …").
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("the database does not answer"),
        "{text}"
    );
    for raw in [
        name.as_str(),
        "not a database",
        "does not exist",
        "malformed",
        "__diesel",
    ] {
        assert!(!text.contains(raw), "raw error text {raw:?} in {text}");
    }
}

/// Makes the test database unusable; returns its name (which must not appear in answers).
async fn break_database(database: &crate::helpers::TestDatabase) -> String {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    if let Some(path) = database.url.strip_prefix("sqlite://") {
        for file in [
            path.to_string(),
            format!("{path}-wal"),
            format!("{path}-shm"),
        ] {
            if let Ok(bytes) = std::fs::read(&file) {
                // In place (same inode), so the daemon's open connections read the garbage.
                std::fs::write(&file, vec![0x5a; bytes.len().max(4096)]).unwrap();
            }
        }
        return "wafleet.db".to_string();
    }
    let (server, name) = database.url.rsplit_once('/').unwrap();
    let admin = std::env::var("DATABASE_URL").unwrap_or_else(|_| format!("{server}/postgres"));
    let mut conn = AsyncPgConnection::establish(&admin).await.unwrap();
    conn.batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
    name.to_string()
}

/// Every metric family docs/metrics.md and the Grafana dashboard name is one the daemon
/// registers (a renamed metric must not leave a dead panel or a wrong doc behind).
#[test]
fn documented_metrics_exist() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = Vec::new();
    crate::helpers::rust_files(&root.join("src"), &mut sources);
    let code: String = sources
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for doc in ["docs/metrics.md", "docs/grafana-dashboard.json"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        let mut named = 0;
        for (at, _) in text.match_indices("wafleet_") {
            let name: String = text[at + "wafleet_".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if name.is_empty() || name.starts_with("process_") {
                continue; // wafleet_process_*: the process collector's own families.
            }
            let family = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name);
            assert!(
                code.contains(&format!("\"{family}\"")),
                "{doc} names wafleet_{name}, which nothing registers"
            );
            named += 1;
        }
        assert!(named > 10, "{doc} names too few metrics ({named})");
    }
}

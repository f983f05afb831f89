//! The operator's one-shot commands, run as the built binary: `wafleet healthcheck` against a
//! running daemon and a closed port, `wafleet config check` (secrets never shown, a bad value
//! exits 2 naming the key) and `wafleet backup FILE` (a consistent copy of an SQLite database a
//! running daemon writes to; never over a file; a clear error for an unwritable place or
//! PostgreSQL).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use secrecy::ExposeSecret;

use crate::cli::wafleet;
use crate::helpers::{spawn_app, Backend, TestDatabase};

/// Runs `cmd` on a blocking thread (the test's runtime keeps serving the daemon meanwhile).
async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One line on stderr, no panic.
fn assert_one_line(stderr: &str) {
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[actix_web::test]
async fn healthcheck_passes_on_a_running_daemon() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let port = app.address.rsplit(':').next().unwrap().to_string();
    let mut cmd = wafleet();
    cmd.arg("healthcheck").env("PORT", &port);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
}

#[test]
fn healthcheck_fails_with_one_line_on_a_closed_port() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let started = std::time::Instant::now();
    let out = wafleet()
        .arg("healthcheck")
        .env("PORT", port.to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = stderr_of(&out);
    assert_one_line(&stderr);
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // A bad setting is a configuration error like everywhere else.
    let out = wafleet()
        .arg("healthcheck")
        .env("PORT", "eighty")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Regression: a second daemon on the SQLite file of a running one used to start, connect every
/// device again (two processes on one WhatsApp session) and run every campaign twice.
#[actix_web::test]
async fn a_second_daemon_on_the_same_sqlite_file_refuses_to_start() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let url = app.settings.database.url.expose_secret().to_string();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = wafleet();
    cmd.args(["serve", "--port", &port.to_string()])
        .env("DB_URI", &url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // Killed when dropped, should it keep running.
    let mut child = crate::fault::Process(cmd.spawn().unwrap());
    let exited = crate::helpers::wait_until(
        "the second daemon to give up",
        Duration::from_secs(60),
        || {
            let status = child.0.try_wait().unwrap();
            async move { status }
        },
    )
    .await;
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(exited.code(), Some(2), "{stderr}");
    assert_one_line(&stderr);
    assert!(stderr.contains("database.url"), "{stderr}");
    assert!(stderr.contains("another wafleet daemon"), "{stderr}");
    assert!(
        stderr.contains(url.strip_prefix("sqlite://").unwrap()),
        "{stderr}"
    );
    // The first daemon did not notice.
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[test]
fn config_check_prints_the_settings_without_secrets() {
    let secrets = [
        ("DB_URI", "postgres://wafleet:db-secret-1@db/wafleet"),
        ("REDIS_URL", "redis://:redis-secret-2@cache:6379/0"),
        ("WAFLEET__ADMIN__PASSWORD", "admin-secret-3"),
        ("WAFLEET__METRICS__TOKEN", "metrics-secret-4"),
    ];
    for format in ["toml", "json"] {
        let mut cmd = wafleet();
        cmd.args(["config", "check", "--format", format])
            .env("PORT", "8089")
            .env("WHATSAPP_CHAT_STORAGE", "false");
        for (name, value) in secrets {
            cmd.env(name, value);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        for (_, value) in secrets {
            let secret = value.split([':', '@']).find(|p| p.contains("secret"));
            let secret = secret.unwrap_or(value);
            assert!(
                !text.contains(secret),
                "{format} output shows {secret}:\n{text}"
            );
        }
        assert!(text.contains("postgres://wafleet:***@db/wafleet"), "{text}");
        assert!(text.contains("8089"), "the environment applies: {text}");
        if format == "json" {
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(json["server"]["port"], 8089);
            assert_eq!(json["chat"]["storage"], false);
            assert_eq!(json["admin"]["password"], "***");
            assert_eq!(json["retention"]["audit_days"], 365);
        } else {
            assert!(text.contains("[retention]"), "{text}");
        }
    }
}

#[test]
fn config_check_exits_2_naming_the_bad_key() {
    for (name, value, key) in [
        (
            "WAFLEET__RETENTION__INTERVAL_HOURS",
            "0",
            "retention.interval_hours",
        ),
        ("WHATSAPP_CHAT_STORAGE", "perhaps", "chat.storage"),
        ("DB_URI", "mysql://u:db-secret-5@h/x", "database.url"),
    ] {
        let out = wafleet()
            .args(["config", "check"])
            .env(name, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}={value}");
        let stderr = stderr_of(&out);
        assert_one_line(&stderr);
        assert!(stderr.contains(key), "{stderr} should name {key}");
        assert!(!stderr.contains("db-secret-5"), "{stderr}");
        assert!(out.stdout.is_empty());
    }
}

/// Rows of `audit_log` in the SQLite file at `path`.
fn audit_rows(path: &Path) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    let rows: Vec<Count> = diesel::RunQueryDsl::load(
        diesel::sql_query("SELECT count(*) AS n FROM audit_log"),
        &mut conn,
    )
    .unwrap();
    rows[0].n
}

#[actix_web::test]
async fn backup_copies_a_database_the_daemon_is_writing_to() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let url = app.settings.database.url.expose_secret().to_string();
    let db_path = Path::new(url.strip_prefix("sqlite://").unwrap()).to_path_buf();

    // A writer that keeps adding audit entries through the daemon's own pool.
    let written = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, written, stop) = (app.db.clone(), written.clone(), stop.clone());
        actix_web::rt::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                wafleet::audit::record(
                    &db,
                    wafleet::audit::AuditEntry {
                        action: "backup.test",
                        ..Default::default()
                    },
                )
                .await;
                written.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    crate::helpers::wait_until("the writer to start", Duration::from_secs(10), || async {
        (written.load(Ordering::SeqCst) >= 50).then_some(())
    })
    .await;

    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("wafleet-backup.db");
    // Rows committed when the backup starts, and when it has finished.
    let before = audit_rows(&db_path);
    let mut cmd = wafleet();
    cmd.arg("backup").arg(&copy).env("DB_URI", &url);
    let out = output(cmd).await;
    let after = audit_rows(&db_path);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("wafleet-backup.db"),
        "it says where the copy went"
    );
    assert!(after > before, "the daemon kept writing during the backup");
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();

    // The copy is a complete database: consistent, with every row committed before the backup
    // began (and perhaps some written during it), and current for the daemon.
    let mut conn = SqliteConnection::establish(copy.to_str().unwrap()).unwrap();
    conn.batch_execute("PRAGMA quick_check").unwrap();
    let copied = audit_rows(&copy);
    assert!(
        (before..=after).contains(&copied),
        "copied {copied} rows, expected between {before} and {after}"
    );
    let mut migrate = wafleet();
    migrate
        .arg("migrate")
        .env("DB_URI", format!("sqlite://{}", copy.display()));
    let out = output(migrate).await;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "database schema is current",
        "{}",
        stderr_of(&out)
    );

    // Never over an existing file: the first copy stays as it was.
    let first = std::fs::read(&copy).unwrap();
    let mut again = wafleet();
    again.arg("backup").arg(&copy).env("DB_URI", &url);
    let out = output(again).await;
    assert_ne!(out.status.code(), Some(0));
    let stderr = stderr_of(&out);
    assert_one_line(&stderr);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(std::fs::read(&copy).unwrap(), first);
}

#[actix_web::test]
async fn backup_to_an_unwritable_place_fails_and_leaves_the_database_alone() {
    let database = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let mut migrate = wafleet();
    migrate.arg("migrate").env("DB_URI", &database.url);
    assert!(output(migrate).await.status.success());
    let db_path = Path::new(database.url.strip_prefix("sqlite://").unwrap()).to_path_buf();
    let original = std::fs::read(&db_path).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let a_file = dir.path().join("a-file");
    std::fs::write(&a_file, b"not a directory").unwrap();
    // Its parent is a file: no one, not even root, can create it.
    let target = a_file.join("backup.db");
    let mut cmd = wafleet();
    cmd.arg("backup").arg(&target).env("DB_URI", &database.url);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = stderr_of(&out);
    assert_one_line(&stderr);
    assert!(
        stderr.contains("cannot write the backup to") && stderr.contains("backup.db"),
        "{stderr}"
    );
    assert!(!target.exists());
    assert_eq!(std::fs::read(&db_path).unwrap(), original, "untouched");

    // A missing database is not created by a backup.
    let missing = dir.path().join("missing.db");
    let mut cmd = wafleet();
    cmd.arg("backup")
        .arg(dir.path().join("copy.db"))
        .env("DB_URI", format!("sqlite://{}", missing.display()));
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("no SQLite database"),
        "{}",
        stderr_of(&out)
    );
    assert!(!missing.exists());
}

#[test]
fn backup_of_postgres_points_at_pg_dump() {
    let dir = tempfile::tempdir().unwrap();
    let out = wafleet()
        .arg("backup")
        .arg(dir.path().join("x.db"))
        .env("DB_URI", "postgres://u:pg-secret-6@127.0.0.1:1/x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = stderr_of(&out);
    assert_one_line(&stderr);
    assert!(stderr.contains("pg_dump"), "{stderr}");
    assert!(!stderr.contains("pg-secret-6"), "{stderr}");
}

//! The `wafleet` binary as an operator runs it: bad configuration, `migrate`, `--version`, and a
//! graceful stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::{wait_until, Backend, TestDatabase};

/// The binary with a clean environment, run from the repository (it reads `config/`).
pub(crate) fn wafleet() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wafleet"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

#[test]
fn bad_configuration_exits_2_with_one_line() {
    for (name, value, key) in [
        ("DB_URI", "nonsense://x", "database.url"),
        ("PORT", "eighty", "server.port"),
        ("WAFLEET__LOG__FORMAT", "xml", "log.format"),
    ] {
        let out = wafleet().env(name, value).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(key), "{stderr} should name {key}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
    }
}

#[test]
fn version_and_help() {
    let out = wafleet().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let help = wafleet().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for word in ["serve", "migrate", "--config", "--log-format"] {
        assert!(text.contains(word), "--help lacks {word}: {text}");
    }
}

#[actix_web::test]
async fn migrate_applies_once_then_reports_current() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(database) = TestDatabase::create(backend).await else {
            eprintln!("skipped migrate on postgres: DATABASE_URL is not set");
            continue;
        };
        let first = wafleet()
            .arg("migrate")
            .env("DB_URI", &database.url)
            .output()
            .unwrap();
        assert!(
            first.status.success(),
            "{}",
            String::from_utf8_lossy(&first.stderr)
        );
        assert!(String::from_utf8_lossy(&first.stdout).contains("applied "));
        let second = wafleet()
            .arg("migrate")
            .env("DB_URI", &database.url)
            .output()
            .unwrap();
        assert!(second.status.success());
        assert_eq!(
            String::from_utf8_lossy(&second.stdout).trim(),
            "database schema is current"
        );
    }
}

/// Start the binary on a fresh SQLite file, wait until it serves, SIGTERM it: exit status 0 and
/// a JSON log (requested with --log-format json) that never contains the database password.
#[actix_web::test]
async fn serves_then_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("nested/dir/wafleet.db");
    let mut child = wafleet()
        .args(["--log-format", "json", "serve", "--port", "0"])
        .env("DB_URI", format!("sqlite://{}", db_path.display()))
        .env("WAFLEET__SERVER__HOST", "127.0.0.1")
        // The first start's one-time password goes to the temporary folder, not the checkout.
        .env(
            "WAFLEET__AUTH__ADMIN_PASSWORD_FILE",
            dir.path().join("admin-password.txt"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let port = wait_until("the listening log line", Duration::from_secs(30), || {
        while let Ok(line) = rx.try_recv() {
            lines.push(line);
        }
        let port = lines.iter().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["message"] == "wafleet listening").then(|| v["port"].as_u64())?
        });
        async move { port }
    })
    .await;
    assert!(
        db_path.is_file(),
        "the SQLite file and its directories are created"
    );
    let health = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.code(), Some(0));
}

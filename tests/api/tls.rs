//! TLS to PostgreSQL and Redis: a PostgreSQL and a Redis of the test's own that accept nothing
//! but TLS, with certificates from a CA the test makes. The daemon connects under `verify-full`,
//! `verify-ca`, `require` and `rediss://`, and refuses a wrong CA, an expired certificate, a host
//! name that does not match and a server without TLS before it starts: exit status 2, one line
//! naming `database.url` or `redis.url`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::sql_types::Bool;
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::json;
use wafleet::db::postgres::{PgConnectError, PgTarget};
use wafleet::db::Db;

use crate::fault::free_port;
use crate::helpers::{spawn_app_at, spawn_app_on, wait_until, Backend, TestDatabase};

/// A certificate authority of the test's own.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate and its key, PEM.
struct ServerCert {
    cert: String,
    key: String,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa { issuer }
    }

    /// The CA certificate written to `dir/<file>`.
    fn write(&self, dir: &Path, file: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, self.issuer.pem()).unwrap();
        path
    }

    /// A certificate for `localhost` only; valid now, or expired in 2021.
    fn server(&self, expired: bool) -> ServerCert {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        ServerCert {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// Runs `program` as the `postgres` user when the tests run as root (PostgreSQL refuses root).
fn as_server_user(program: &Path) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"));
    if root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// A PostgreSQL cluster of its own that takes TLS connections only (pg_hba: `hostssl` alone).
struct TlsPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl TlsPostgres {
    fn start(cert: &ServerCert) -> TlsPostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql (.ci/run installs them)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|bin| bin.join("initdb").is_file())
            .expect("initdb");
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("chmod")
            .arg("755")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        let server = TlsPostgres {
            port: free_port(),
            dir,
            bin,
        };
        let data = server.data();
        std::fs::create_dir(&data).unwrap();
        server.own(&data);
        let out = as_server_user(&server.bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {out:?}");
        std::fs::write(
            data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
        )
        .unwrap();
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nfsync = off\n",
            server.port,
            data.display()
        );
        let mut main_conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        main_conf.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), main_conf).unwrap();
        server.install(cert);
        let out = as_server_user(&server.bin.join("pg_ctl"))
            .args(["-w", "-t", "60", "-l"])
            .arg(server.dir.path().join("log"))
            .arg("-D")
            .arg(&data)
            .arg("start")
            .output()
            .unwrap();
        let log = std::fs::read_to_string(server.dir.path().join("log")).unwrap_or_default();
        assert!(out.status.success(), "pg_ctl start: {out:?}\n{log}");
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Hands `path` to the server's user (when running as root).
    fn own(&self, path: &Path) {
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .arg(self.dir.path())
            .status();
    }

    /// Writes the server's certificate and key (key 0600, as PostgreSQL demands).
    fn install(&self, cert: &ServerCert) {
        let data = self.data();
        std::fs::write(data.join("server.crt"), &cert.cert).unwrap();
        std::fs::write(data.join("server.key"), &cert.key).unwrap();
        let status = Command::new("chmod")
            .arg("600")
            .arg(data.join("server.key"))
            .status()
            .unwrap();
        assert!(status.success());
        self.own(&data);
    }

    /// Swaps the certificate and reloads (PostgreSQL re-reads its TLS files on reload).
    fn replace_certificate(&self, cert: &ServerCert) {
        self.install(cert);
        let out = as_server_user(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .arg("reload")
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl reload: {out:?}");
    }

    /// `postgres://postgres@<host>:<port>/postgres?<query>`.
    fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres?{query}", self.port)
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = as_server_user(&self.bin.join("pg_ctl"))
            .args(["-m", "immediate", "-D"])
            .arg(self.data())
            .arg("stop")
            .output();
    }
}

/// A Redis that listens on a TLS port only.
struct TlsRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TlsRedis {
    fn start(ca: &TestCa, cert: &ServerCert) -> TlsRedis {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("server.crt"), &cert.cert).unwrap();
        std::fs::write(dir.path().join("server.key"), &cert.key).unwrap();
        let ca_file = ca.write(dir.path(), "ca.crt");
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .arg("--tls-cert-file")
            .arg(dir.path().join("server.crt"))
            .arg("--tls-key-file")
            .arg(dir.path().join("server.key"))
            .arg("--tls-ca-cert-file")
            .arg(ca_file)
            .args(["--tls-auth-clients", "no", "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (.ci/run installs it)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "redis-server did not listen on its TLS port"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        TlsRedis {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the daemon's own pooled connection is encrypted (pg_stat_ssl of its backend).
async fn pool_uses_tls(db: &Db) -> bool {
    #[derive(QueryableByName)]
    struct Ssl {
        #[diesel(sql_type = Bool)]
        ssl: bool,
    }
    let Db::Postgres(pool) = db else {
        panic!("a PostgreSQL daemon")
    };
    let mut conn = pool.get().await.unwrap();
    diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .get_result::<Ssl>(&mut conn)
        .await
        .unwrap()
        .ssl
}

/// `wafleet serve` with `env`, in an empty directory: its exit status and its stderr, or a
/// failure when it does not stop within 60 s.
fn serve_exit(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wafleet"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", "0")
        .env("WAFLEET__SERVER__HOST", "127.0.0.1")
        .env("WAFLEET__WHATSAPP__CONNECTOR", "sim")
        .envs(env.iter().copied())
        .arg("serve")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("wafleet kept running with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.code(), stderr)
}

/// Asserts the daemon refused to start: status 2, one line naming `key` and containing `cause`.
fn assert_refused(env: &[(&str, &str)], key: &str, cause: &str) {
    let (code, stderr) = serve_exit(env);
    assert_eq!(code, Some(2), "exit status with {env:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(key), "{stderr} should name {key}");
    assert!(
        stderr.to_lowercase().contains(&cause.to_lowercase()),
        "{stderr} should say {cause}"
    );
}

#[actix_web::test]
async fn postgres_over_tls_verifies_as_libpq_does() {
    let ca = TestCa::new("wafleet test CA");
    let other_ca = TestCa::new("someone else's CA");
    let server = TlsPostgres::start(&ca.server(false));
    let files = tempfile::tempdir().unwrap();
    let ca_file = ca.write(files.path(), "ca.pem").display().to_string();
    let other_file = other_ca
        .write(files.path(), "other.pem")
        .display()
        .to_string();

    // The server takes nothing but TLS: a plain connection is turned away.
    let plain = PgTarget::from_url(&server.url("localhost", "sslmode=disable"))
        .unwrap()
        .connect()
        .await;
    assert!(
        plain.is_err(),
        "the test server must refuse plain connections"
    );

    // The daemon itself, migrations and pool, under verify-full with the test's CA and under
    // require without any CA (encryption only).
    for query in [
        format!("sslmode=verify-full&sslrootcert={ca_file}"),
        "sslmode=require".to_string(),
    ] {
        let url = server.url("localhost", &query);
        // A database of its own per mode, so each run migrates from scratch.
        let admin = PgTarget::from_url(&url).unwrap().connect().await;
        let mut admin = admin.unwrap_or_else(|e| panic!("{query}: {e}"));
        let name = format!("wafleet_tls_{}", uuid::Uuid::new_v4().simple());
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let database_url = url.replace("/postgres?", &format!("/{name}?"));
        let app = spawn_app_at(&database_url, &[]).await;
        let ready = app.get("/readyz").await;
        assert_eq!(ready.status(), 200, "{query}");
        assert!(
            pool_uses_tls(&app.db).await,
            "{query}: pooled connection is TLS"
        );
        let signed_in = app.admin().await;
        let created = signed_in
            .post("/api/v1/devices", &json!({"name": "over TLS"}))
            .await;
        assert!(created.status().is_success(), "{query}: a write over TLS");
    }

    // verify-ca checks the chain only: the certificate names localhost, 127.0.0.1 passes…
    let by_address = format!("sslmode=verify-ca&sslrootcert={ca_file}");
    PgTarget::from_url(&server.url("127.0.0.1", &by_address))
        .unwrap()
        .connect()
        .await
        .unwrap();
    // …verify-full compares the name too.
    let wrong_name = server.url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca_file}"),
    );
    assert_refused(&[("DB_URI", &wrong_name)], "database.url", "certificate");

    // Another CA's roots: untrusted, under verify-ca as under verify-full.
    for mode in ["verify-ca", "verify-full"] {
        let url = server.url(
            "localhost",
            &format!("sslmode={mode}&sslrootcert={other_file}"),
        );
        assert_refused(&[("DB_URI", &url)], "database.url", "UnknownIssuer");
    }

    // An expired certificate from the right CA.
    server.replace_certificate(&ca.server(true));
    let full = server.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca_file}"),
    );
    wait_until(
        "the server to present the expired certificate",
        Duration::from_secs(20),
        || {
            let full = full.clone();
            async move {
                match PgTarget::from_url(&full).unwrap().connect().await {
                    Err(PgConnectError::Tls(_)) => Some(()),
                    _ => None,
                }
            }
        },
    )
    .await;
    assert_refused(&[("DB_URI", &full)], "database.url", "expired");
}

/// A "PostgreSQL" that answers the TLS request with "no", as a server without TLS does.
#[actix_web::test]
async fn require_refuses_a_server_without_tls() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut request = [0u8; 8];
            if stream.read_exact(&mut request).is_ok() {
                let _ = stream.write_all(b"N");
            }
        }
    });
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=require");
    assert_refused(&[("DB_URI", &url)], "database.url", "does not support TLS");
}

#[actix_web::test]
async fn redis_over_tls_carries_events_and_refuses_a_wrong_ca() {
    let ca = TestCa::new("wafleet test CA");
    let redis = TlsRedis::start(&ca, &ca.server(false));
    let files = tempfile::tempdir().unwrap();
    let ca_file = ca.write(files.path(), "ca.pem").display().to_string();
    let url = format!("rediss://localhost:{}", redis.port);
    let channel = format!("wafleet-tls:{}", uuid::Uuid::new_v4().simple());

    // A listener on the daemon's channel, over TLS with the same CA.
    let listener = redis::Client::build_with_tls(
        url.as_str(),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(std::fs::read(&ca_file).unwrap()),
        },
    )
    .unwrap();
    let mut pubsub = listener.get_async_pubsub().await.unwrap();
    pubsub.subscribe(&channel).await.unwrap();

    let database = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let app = spawn_app_on(
        &database,
        &[
            ("REDIS_URL", url.as_str()),
            ("WAFLEET__REDIS__TLS_CA_FILE", ca_file.as_str()),
            ("WAFLEET__REDIS__CHANNEL", channel.as_str()),
        ],
    )
    .await;
    wait_until(
        "the bridge to connect over TLS",
        Duration::from_secs(30),
        || async {
            let text = app.metrics().await.text().await.unwrap();
            text.contains("wafleet_redis_bridge_up 1").then_some(())
        },
    )
    .await;
    // A device created on the daemon is published for the other daemons, over TLS.
    let admin = app.admin().await;
    let mut messages = pubsub.into_on_message();
    let created = admin
        .post("/api/v1/devices", &json!({"name": "over tls"}))
        .await;
    assert!(created.status().is_success());
    let message = tokio::time::timeout(
        Duration::from_secs(30),
        futures::StreamExt::next(&mut messages),
    )
    .await
    .expect("an event on the channel within 30 s")
    .unwrap();
    let payload: serde_json::Value =
        serde_json::from_str(&message.get_payload::<String>().unwrap()).unwrap();
    assert_eq!(payload["event"]["tenant_id"], admin.tenant_id, "{payload}");

    // Another CA: refused at start, naming redis.url.
    let other = TestCa::new("someone else's CA").write(files.path(), "other.pem");
    let other = other.display().to_string();
    assert_refused(
        &[("REDIS_URL", &url), ("WAFLEET__REDIS__TLS_CA_FILE", &other)],
        "redis.url",
        "UnknownIssuer",
    );
    // A server without TLS behind rediss://.
    if let Ok(plain) = std::env::var("REDIS_URL") {
        let tls_to_plain = plain.replacen("redis://", "rediss://", 1);
        assert_refused(
            &[("REDIS_URL", &tls_to_plain)],
            "redis.url",
            "TLS handshake",
        );
    }
}

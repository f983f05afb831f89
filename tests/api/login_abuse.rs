//! Sign-in under attack: parallel bursts, per-account delays, proxies, dropped connections and
//! oversize input.

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use futures::future::join_all;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use wafleet::db::schema::{audit_log, sessions};
use wafleet::db::{Db, DbError};
use wafleet::db_run;

use crate::helpers::{new_client, wait_until, TestApp, ADMIN_EMAIL, ADMIN_PASSWORD};

crate::both_backends!(
    a_parallel_burst_cannot_outrun_the_throttle,
    a_dropped_connection_still_counts,
    oversize_input_is_refused_before_any_work,
);
crate::both_backends!(
    with &[
        ("WAFLEET__SERVER__TRUSTED_PROXIES", "127.0.0.1/32, 10.0.0.0/8"),
        ("WAFLEET__AUTH__LOGIN_MAX_FAILURES", "2"),
        ("WAFLEET__AUTH__LOGIN_MAX_DELAY_SECS", "2"),
    ];
    the_account_delay_grows_and_ends,
    forwarded_for_is_honoured_from_a_trusted_proxy,
);
crate::both_backends!(forwarded_for_is_ignored_from_anyone_else);

/// A login from `forwarded_for` (when given) with this email and password.
async fn login(app: &TestApp, forwarded_for: Option<&str>, email: &str, password: &str) -> u16 {
    let mut request = new_client()
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}));
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    request.send().await.unwrap().status().as_u16()
}

/// The audit actions about sign-in, oldest first, with their addresses.
async fn login_audit(db: &Db) -> Result<Vec<(String, Option<String>)>, DbError> {
    db_run!(db, |conn| {
        audit_log::table
            .filter(audit_log::action.like("auth.login%"))
            .order(audit_log::id.asc())
            .select((audit_log::action, audit_log::ip))
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

async fn a_parallel_burst_cannot_outrun_the_throttle(app: TestApp) {
    let client = new_client();
    let attempts = (0..200).map(|i| {
        let password = if i == 30 {
            ADMIN_PASSWORD
        } else {
            "wrong-password"
        };
        client
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"email": ADMIN_EMAIL, "password": password}))
            .send()
    });
    let statuses: Vec<u16> = join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    let count = |code| statuses.iter().filter(|s| **s == code).count();
    assert!(
        count(401) <= 5,
        "at most five verifications failed: {statuses:?}"
    );
    assert_eq!(count(401) + count(429) + count(200), 200, "{statuses:?}");
    // However the burst interleaved, no sign-in succeeded after the fifth failure.
    let audit = login_audit(&app.db).await.unwrap();
    let failed_before_success = audit
        .iter()
        .take_while(|(action, _)| action != "auth.login")
        .filter(|(action, _)| action == "auth.login_failed")
        .count();
    assert!(failed_before_success < 5, "{audit:?}");
    assert!(count(200) <= 1);
}

async fn the_account_delay_grows_and_ends(app: TestApp) {
    // Each attempt from another address: only the account's delay applies.
    let from = |n: u32| format!("203.0.{}.{}", n / 256, n % 256);
    assert_eq!(
        login(&app, Some(from(1).as_str()), ADMIN_EMAIL, "wrong-pass-1").await,
        401
    );
    assert_eq!(
        login(&app, Some(from(2).as_str()), ADMIN_EMAIL, "wrong-pass-2").await,
        401
    );
    // The second failure (login_max_failures) starts the delay: even the right password waits.
    let waiting = new_client()
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", from(3))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(waiting.status(), 429);
    assert_eq!(waiting.headers()["retry-after"], "1");
    // After 1 s a guess is possible again; its failure doubles the wait (capped at 2 s).
    let mut n = 10;
    let status = wait_until("the first delay to end", Duration::from_secs(10), || {
        n += 1;
        let address = from(n);
        let app = &app;
        async move {
            let status = login(app, Some(address.as_str()), ADMIN_EMAIL, "wrong-pass-3").await;
            (status != 429).then_some(status)
        }
    })
    .await;
    assert_eq!(status, 401);
    let waiting = new_client()
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", from(100))
        .json(&json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(waiting.headers()["retry-after"], "2");
    // Never for good: once the delay is over, the right password signs in.
    let mut n = 100;
    wait_until(
        "the right password to be accepted",
        Duration::from_secs(10),
        || {
            n += 1;
            let address = from(n);
            let app = &app;
            async move {
                let status = login(app, Some(address.as_str()), ADMIN_EMAIL, ADMIN_PASSWORD).await;
                assert!(status == 200 || status == 429, "{status}");
                (status == 200).then_some(())
            }
        },
    )
    .await;
}

async fn forwarded_for_is_honoured_from_a_trusted_proxy(app: TestApp) {
    // Two failures (the budget here) from one client behind the proxy…
    for email in ["a@nobody.test", "b@nobody.test"] {
        let chain = "6.6.6.6, 198.51.100.1, 10.0.0.7";
        assert_eq!(login(&app, Some(chain), email, "wrong-password").await, 401);
    }
    // …limit that client, whatever it claims further left…
    let chain = "1.2.3.4, 198.51.100.1";
    assert_eq!(
        login(&app, Some(chain), "c@nobody.test", "wrong-password").await,
        429
    );
    // …and nobody else behind the same proxy.
    let other = Some("198.51.100.2");
    assert_eq!(login(&app, other, ADMIN_EMAIL, ADMIN_PASSWORD).await, 200);
    let audit = login_audit(&app.db).await.unwrap();
    assert_eq!(
        audit.last(),
        Some(&("auth.login".to_string(), Some("198.51.100.2".to_string())))
    );
    let ips: Vec<Option<String>> = stored_session_ips(&app.db).await.unwrap();
    assert_eq!(ips, [Some("198.51.100.2".to_string())]);
}

async fn stored_session_ips(db: &Db) -> Result<Vec<Option<String>>, DbError> {
    db_run!(db, |conn| {
        sessions::table
            .select(sessions::ip)
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

async fn forwarded_for_is_ignored_from_anyone_else(app: TestApp) {
    for n in 0..5 {
        let spoofed = format!("198.51.100.{n}");
        let email = format!("{n}@nobody.test");
        assert_eq!(
            login(&app, Some(spoofed.as_str()), &email, "wrong-password").await,
            401
        );
    }
    let spoofed = Some("198.51.100.99");
    assert_eq!(
        login(&app, spoofed, "x@nobody.test", "wrong-password").await,
        429
    );
    let audit = login_audit(&app.db).await.unwrap();
    assert!(audit
        .iter()
        .all(|(_, ip)| ip.as_deref() == Some("127.0.0.1")));
}

async fn a_dropped_connection_still_counts(app: TestApp) {
    let body = json!({"email": ADMIN_EMAIL, "password": "wrong-password"}).to_string();
    let request = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let address = app.address.trim_start_matches("http://");
    // Hashing is held, so the attempt is surely half-way when the connection goes.
    let hasher = &app.state.auth.hasher;
    let held = hasher.hold_all().await.unwrap();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let limiter = &app.state.auth.limiter;
    wait_until("the attempt to start", Duration::from_secs(10), || async {
        limiter.in_flight(ADMIN_EMAIL).then_some(())
    })
    .await;
    // Reset the connection mid-attempt.
    stream.set_zero_linger().unwrap();
    drop(stream);
    drop(held);
    wait_until(
        "the failure to be audited",
        Duration::from_secs(10),
        || async {
            let audit = login_audit(&app.db).await.ok()?;
            (audit.len() == 1 && audit[0].0 == "auth.login_failed").then_some(())
        },
    )
    .await;
    assert_eq!(limiter.address_failures("127.0.0.1"), 1);
    let all = std::thread::available_parallelism().map_or(2, |n| n.get());
    wait_until(
        "the hashing permit to come back",
        Duration::from_secs(10),
        || async { (hasher.free_permits() == all).then_some(()) },
    )
    .await;
}

async fn oversize_input_is_refused_before_any_work(app: TestApp) {
    let huge = format!("{}@x.test", "a".repeat(900_000));
    let long = format!("{}@x.test", "a".repeat(250));
    for email in [huge.as_str(), long.as_str()] {
        let response = new_client()
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"email": email, "password": "wrong-password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_email");
    }
    let long_password = "p".repeat(257);
    assert_eq!(login(&app, None, ADMIN_EMAIL, &long_password).await, 400);
    assert!(login_audit(&app.db).await.unwrap().is_empty());
    assert_eq!(app.state.auth.limiter.address_failures("127.0.0.1"), 0);
    // The throttle was not touched: a normal sign-in works at once.
    assert_eq!(login(&app, None, ADMIN_EMAIL, ADMIN_PASSWORD).await, 200);
}

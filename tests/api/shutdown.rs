//! SIGTERM in the middle of a broadcast, with a WebSocket client connected: the daemon exits 0
//! within `server.shutdown_timeout_secs`, the client is told 1001 (going away), no outbox row is
//! left claimed, and after a restart the campaign completes with every lead messaged exactly
//! once (counted by the simulator, which runs in its own process and outlives the daemon) and
//! every send in the chat mirror.

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use diesel::{ExpressionMethods, QueryDsl};
use diesel_async::RunQueryDsl;
use futures::StreamExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use wafleet::db::schema::{messages as chat_messages, outbox};
use wafleet::db::{Db, DbError};

use crate::campaigns::{messages, wait_status};
use crate::fault::{drill_pacing, online, spawn_daemon, start_drill, Drill};
use crate::helpers::{login_at, wait_until, Backend, TestDatabase, ADMIN_EMAIL, ADMIN_PASSWORD};
use crate::ws::token_for;

/// The shutdown budget the daemon runs with.
const BUDGET_SECS: u64 = 10;
/// Leads: enough that the campaign is still sending when the signal comes.
const LEADS: usize = 600;

#[actix_web::test]
async fn sigterm_mid_campaign_stops_in_order_and_loses_nothing_sqlite() {
    sigterm_drill(Backend::Sqlite).await;
}

#[actix_web::test]
async fn sigterm_mid_campaign_stops_in_order_and_loses_nothing_postgres() {
    sigterm_drill(Backend::Postgres).await;
}

async fn sigterm_drill(backend: Backend) {
    let _heavy = crate::helpers::heavy_test().await;
    let Some(database) = TestDatabase::create(backend).await else {
        eprintln!("skipped the SIGTERM drill on postgres: DATABASE_URL is not set");
        return;
    };
    let budget = BUDGET_SECS.to_string();
    // Leases far longer than the test: a row left claimed would hold the campaign up.
    let mut drill = Drill::start(
        &database,
        &[
            ("WAFLEET__SERVER__SHUTDOWN_TIMEOUT_SECS", budget.as_str()),
            ("WAFLEET__BROADCAST__LEASE_SECS", "600"),
        ],
    )
    .await;
    let (control, port, address, db) = (&drill.control, drill.port, &drill.address, &drill.db);
    let admin = &drill.admin;
    let token = token_for(admin, &["read"]).await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/api/v1/ws?token={token}"))
            .await
            .unwrap();
    let campaign = start_drill(db, admin, "SIGTERM drill", LEADS, drill_pacing()).await;
    wait_until("the first sends", Duration::from_secs(30), || async {
        let stats = control.stats().await.ok()?;
        (stats.delivered >= 20).then_some(())
    })
    .await;

    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &drill.daemon.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let close = tokio::time::timeout(Duration::from_secs(BUDGET_SECS + 5), async {
        while let Some(frame) = ws.next().await {
            if let Ok(Message::Close(close)) = frame {
                return close;
            }
        }
        None
    })
    .await
    .expect("the WebSocket closes within the budget");
    assert_eq!(
        close.map(|c| c.code),
        Some(CloseCode::Away),
        "WebSocket clients are told 1001 (going away)"
    );
    let exited = tokio::time::timeout(Duration::from_secs(BUDGET_SECS + 5), async {
        loop {
            if let Some(exit) = drill.daemon.0.try_wait().unwrap() {
                return exit;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let exit = exited.await.expect("the daemon exits within its budget");
    let took = signalled.elapsed();
    println!(
        "{}",
        serde_json::json!({"sigterm_drill": format!("{backend:?}"), "exit_ms": took.as_millis(),
                           "budget_secs": BUDGET_SECS})
    );
    assert_eq!(exit.code(), Some(0), "a clean exit");
    assert!(
        took < Duration::from_secs(BUDGET_SECS + 2),
        "exited after {took:?}, budget {BUDGET_SECS} s"
    );
    wait_until(
        "the simulator to see the daemon gone",
        Duration::from_secs(30),
        || online(control, 0),
    )
    .await;
    let at_stop = control.stats().await.unwrap();
    assert!(
        (at_stop.delivered as usize) < LEADS,
        "the campaign was still sending when stopped"
    );
    assert_eq!(claimed_rows(db).await.unwrap(), 0, "no row left claimed");
    let mirrored_at_stop = mirrored(db).await.unwrap();
    assert_eq!(
        mirrored_at_stop, at_stop.delivered,
        "every send before the stop is in the chat mirror"
    );

    // Restarted on the same database, the campaign finishes; nothing was sent twice.
    drill.daemon = spawn_daemon(&drill.env, port);
    wait_until(
        "the daemon to serve again",
        Duration::from_secs(30),
        || async {
            let ready = reqwest::get(format!("{address}/readyz")).await.ok()?;
            ready.status().is_success().then_some(())
        },
    )
    .await;
    let admin = login_at(address, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    wait_status(&admin, campaign, "completed").await;
    let rows = messages(&admin, campaign).await;
    let stats = control.stats().await.unwrap();
    let ids: HashSet<&str> = rows
        .iter()
        .map(|r| r["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        (rows.len(), ids.len()),
        (LEADS, LEADS),
        "one row, one id per lead"
    );
    assert_eq!(stats.delivered as usize, LEADS, "every lead messaged");
    assert_eq!(stats.duplicates, 0, "nothing sent twice: {stats:?}");
    assert_eq!(
        stats.violations, 0,
        "pacing held across the restart: {stats:?}"
    );
}

/// Outbox rows claimed by a sender (`sending`).
async fn claimed_rows(db: &Db) -> Result<i64, DbError> {
    wafleet::db_run!(db, |conn| {
        outbox::table
            .filter(outbox::status.eq("sending"))
            .count()
            .get_result::<i64>(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Our own sends in the chat mirror.
async fn mirrored(db: &Db) -> Result<u64, DbError> {
    let count = wafleet::db_run!(db, |conn| {
        chat_messages::table
            .filter(chat_messages::from_me.eq(true))
            .count()
            .get_result::<i64>(conn)
            .await
            .map_err(DbError::from)
    })?;
    Ok(count as u64)
}

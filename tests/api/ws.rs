//! The WebSocket stream with a real client: subscription rules, device events end to end,
//! authentication, slow consumers, session churn, and two daemons sharing events over Redis.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wafleet::hub::{HubEvent, Topic};

use crate::helpers::{
    spawn_app_on, spawn_app_with, wait_until, Backend, TestApp, TestDatabase, UserClient,
};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How a test client authenticates.
pub(crate) enum WsAuth<'a> {
    None,
    Bearer(&'a str),
    Query(&'a str),
    Cookie(&'a str, Option<&'a str>),
}

pub(crate) async fn connect(
    app: &TestApp,
    auth: WsAuth<'_>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let base = app.address.replace("http://", "ws://");
    let url = match &auth {
        WsAuth::Query(token) => format!("{base}/api/v1/ws?token={token}"),
        _ => format!("{base}/api/v1/ws"),
    };
    let mut request = url.into_client_request().unwrap();
    let headers = request.headers_mut();
    match auth {
        WsAuth::Bearer(token) => {
            headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        WsAuth::Cookie(cookie, origin) => {
            headers.insert("cookie", cookie.parse().unwrap());
            if let Some(origin) = origin {
                headers.insert("origin", origin.parse().unwrap());
            }
        }
        WsAuth::None | WsAuth::Query(_) => {}
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(ws, _)| ws)
}

/// The next JSON text frame matching `wanted`, within 15 s.
pub(crate) async fn next_json(ws: &mut Ws, mut wanted: impl FnMut(&Value) -> bool) -> Value {
    let found = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(message) = ws.next().await {
            if let Message::Text(text) = message.unwrap() {
                let value: Value = serde_json::from_str(&text).unwrap();
                if wanted(&value) {
                    return value;
                }
            }
        }
        panic!("stream ended");
    })
    .await;
    found.expect("no matching frame within 15 s")
}

pub(crate) async fn subscribe(ws: &mut Ws, topics: &[&str]) -> Value {
    let op = json!({"op": "subscribe", "topics": topics}).to_string();
    ws.send(Message::text(op)).await.unwrap();
    next_json(ws, |v| v["event"] == "SUBSCRIBED").await
}

pub(crate) async fn token_for(user: &UserClient, scopes: &[&str]) -> String {
    let created: Value = user
        .post("/api/v1/tokens", &json!({"name": "ws", "scopes": scopes}))
        .await
        .json()
        .await
        .unwrap();
    created["token"].as_str().unwrap().to_string()
}

fn is_status(v: &Value, device: i64, status: &str) -> bool {
    v["event"] == "DEVICE_STATUS"
        && v["data"]["device_id"] == device
        && v["data"]["status"] == status
}

crate::both_backends!(
    device_events_flow_to_subscribers,
    topics_are_tenant_and_device_scoped,
    one_subscription_checks_hundreds_of_topics
);

async fn device_events_flow_to_subscribers(app: TestApp) {
    let admin = app.admin().await;
    let token = token_for(&admin, &["read", "write"]).await;
    let mut ws = connect(&app, WsAuth::Bearer(&token)).await.unwrap();
    let subscribed = subscribe(&mut ws, &["device-status"]).await;
    assert_eq!(subscribed["topics"], json!(["device-status"]));

    let created: Value = admin
        .post("/api/v1/devices", &json!({"name": "ws"}))
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap();
    let qr = next_json(&mut ws, |v| v["event"] == "QR_UPDATED").await;
    assert_eq!(qr["topic"], "device-status");
    assert_eq!(qr["data"]["device_id"], id);
    assert!(qr["data"]["code"].as_str().unwrap().starts_with("2@"));
    admin
        .post("/api/v1/sim/scan", &json!({"device_id": id}))
        .await;
    let online = next_json(&mut ws, |v| is_status(v, id, "online")).await;
    let phone = online["data"]["phone"].as_str().unwrap().to_string();
    assert!(online["data"]["jid"].as_str().unwrap().starts_with(&phone));
    assert!(
        online["seq"].as_u64().unwrap() > qr["seq"].as_u64().unwrap(),
        "seq grows per topic"
    );
    assert!(online["ts"].is_string());

    admin
        .post(&format!("/api/v1/devices/{id}/logout"), &json!({}))
        .await;
    let logged_out = next_json(&mut ws, |v| v["event"] == "DEVICE_LOGGED_OUT").await;
    assert_eq!(logged_out["data"]["device_id"], id);
    assert_eq!(
        logged_out["data"]["phone"],
        phone.as_str(),
        "clients match devices by phone"
    );

    ws.send(Message::text(r#"{"op":"ping"}"#)).await.unwrap();
    next_json(&mut ws, |v| v["event"] == "PONG").await;
    ws.send(Message::text("not json")).await.unwrap();
    let error = next_json(&mut ws, |v| v["event"] == "ERROR").await;
    assert_eq!(error["error"]["code"], "invalid_message");
}

/// Subscribes with one frame of `topics`; answers the subscribed topics and every refused
/// (topic, error code), in any order.
async fn subscribe_all(
    ws: &mut Ws,
    topics: &[String],
) -> (BTreeSet<String>, BTreeSet<(String, String)>) {
    let op = json!({"op": "subscribe", "topics": topics});
    ws.send(Message::text(op.to_string())).await.unwrap();
    let mut refused = BTreeSet::new();
    loop {
        let frame = next_json(ws, |_| true).await;
        if frame["event"] == "ERROR" {
            refused.insert((
                frame["topic"].as_str().unwrap().to_string(),
                frame["error"]["code"].as_str().unwrap().to_string(),
            ));
        } else if frame["event"] == "SUBSCRIBED" {
            let subscribed = frame["topics"].as_array().unwrap().iter();
            return (
                subscribed
                    .map(|t| t.as_str().unwrap().to_string())
                    .collect(),
                refused,
            );
        }
    }
}

/// A dashboard subscribes to many devices at once: every topic of one frame is checked (more
/// ids than one statement binds), each answered as it would be alone, members included.
async fn one_subscription_checks_hundreds_of_topics(app: TestApp) {
    let acme = app.new_tenant("Acme").await;
    let other = app.new_tenant("Other").await;
    let mut mine = Vec::new();
    for n in 0..(wafleet::db::ID_CHUNK + 100) {
        let device =
            wafleet::device::store::insert_device(&app.db, acme.tenant_id, &format!("d{n}"))
                .await
                .unwrap();
        mine.push(format!("messages/{}", device.id));
    }
    let theirs = wafleet::device::store::insert_device(&app.db, other.tenant_id, "theirs")
        .await
        .unwrap();
    let lists = wafleet::broadcast::leads::store::insert_list;
    let my_list = lists(&app.db, acme.tenant_id, "mine").await.unwrap();
    let their_list = lists(&app.db, other.tenant_id, "theirs").await.unwrap();
    let mut topics = mine.clone();
    topics.extend([
        format!("messages/{}", theirs.id),
        format!("lead-lists/{}", my_list.id),
        format!("lead-lists/{}", their_list.id),
        "campaign/987654".into(),
        "sequence/987654".into(),
        "device-status".into(),
        "messages/0".into(),
    ]);
    let token = token_for(&acme, &["read"]).await;
    let mut ws = connect(&app, WsAuth::Query(&token)).await.unwrap();
    let (subscribed, refused) = subscribe_all(&mut ws, &topics).await;
    let mut expected: BTreeSet<String> = mine.iter().cloned().collect();
    expected.insert(format!("lead-lists/{}", my_list.id));
    expected.insert("device-status".into());
    assert_eq!(subscribed, expected);
    let forbidden = |topic: String| (topic, "forbidden_topic".to_string());
    let expected_refused: BTreeSet<(String, String)> = [
        forbidden(format!("messages/{}", theirs.id)),
        forbidden(format!("lead-lists/{}", their_list.id)),
        forbidden("campaign/987654".into()),
        forbidden("sequence/987654".into()),
        ("messages/0".into(), "unknown_topic".into()),
    ]
    .into_iter()
    .collect();
    assert_eq!(refused, expected_refused);

    // A member assigned the first and the last device hears those two only.
    let ids: Vec<i64> = [&mine[0], &mine[mine.len() - 1]]
        .iter()
        .map(|t| t.trim_start_matches("messages/").parse().unwrap())
        .collect();
    let (_member, mut ws) = crate::ws_access::member_with(&app, &acme, &ids).await;
    let (subscribed, refused) = subscribe_all(&mut ws, &mine).await;
    let expected: BTreeSet<String> = [mine[0].clone(), mine[mine.len() - 1].clone()].into();
    assert_eq!(subscribed, expected);
    assert_eq!(refused.len(), mine.len() - 2);
    assert!(refused
        .iter()
        .all(|(topic, code)| code == "forbidden_topic" && !expected.contains(topic)));
}

async fn topics_are_tenant_and_device_scoped(app: TestApp) {
    let acme = app.new_tenant("Acme").await;
    let other = app.new_tenant("Other").await;
    let acme_device = wafleet::device::store::insert_device(&app.db, acme.tenant_id, "a")
        .await
        .unwrap();
    let other_device = wafleet::device::store::insert_device(&app.db, other.tenant_id, "b")
        .await
        .unwrap();
    let viewer = app.create_user(acme.tenant_id, "viewer").await;
    let token = token_for(&acme, &["read"]).await;
    let _ = viewer;
    let mut ws = connect(&app, WsAuth::Query(&token)).await.unwrap();
    let op = json!({"op": "subscribe", "topics": [
        format!("messages/{}", other_device.id),
        format!("messages/{}", acme_device.id),
        "campaign/1",
        "nonsense",
    ]});
    ws.send(Message::text(op.to_string())).await.unwrap();
    let mut errors = Vec::new();
    let subscribed = loop {
        let frame = next_json(&mut ws, |_| true).await;
        if frame["event"] == "ERROR" {
            errors.push((
                frame["topic"].as_str().unwrap().to_string(),
                frame["error"]["code"].as_str().unwrap().to_string(),
            ));
        } else if frame["event"] == "SUBSCRIBED" {
            break frame;
        }
    };
    assert_eq!(
        subscribed["topics"],
        json!([format!("messages/{}", acme_device.id)])
    );
    assert!(
        errors.contains(&(
            format!("messages/{}", other_device.id),
            "forbidden_topic".into()
        )),
        "{errors:?}"
    );
    assert!(
        errors.contains(&("nonsense".into(), "unknown_topic".into())),
        "{errors:?}"
    );
    assert_eq!(errors.len(), 3, "{errors:?}");

    // Another tenant's device events never reach this tenant's device-status subscribers.
    subscribe(&mut ws, &["device-status"]).await;
    app.state
        .hub
        .do_send(test_event(other.tenant_id, "FOREIGN"));
    app.state.hub.do_send(test_event(acme.tenant_id, "MINE"));
    let first = next_json(&mut ws, |v| v["event"] == "FOREIGN" || v["event"] == "MINE").await;
    assert_eq!(first["event"], "MINE");
}

fn test_event(tenant_id: i64, name: &str) -> HubEvent {
    HubEvent {
        tenant_id,
        topic: Topic::DeviceStatus,
        device_id: None,
        event: name.to_string(),
        data: json!({}),
        ts: chrono::Utc::now(),
    }
}

/// The `Set-Cookie` value of a fresh admin sign-in, as `name=value`.
async fn admin_cookie(app: &TestApp) -> String {
    let response = crate::helpers::new_client()
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": crate::helpers::ADMIN_EMAIL, "password": crate::helpers::ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = response.cookies().next().unwrap();
    format!("{}={}", cookie.name(), cookie.value())
}

#[actix_web::test]
async fn upgrades_need_credentials_and_same_origin_cookies() {
    let app = crate::helpers::spawn_app(Backend::Sqlite).await.unwrap();
    let refused = connect(&app, WsAuth::None).await.unwrap_err();
    assert!(refused.to_string().contains("401"), "{refused}");
    let bad_token = connect(&app, WsAuth::Query("wfl_nope")).await.unwrap_err();
    assert!(bad_token.to_string().contains("401"), "{bad_token}");

    let cookie = admin_cookie(&app).await;
    let cross = connect(&app, WsAuth::Cookie(&cookie, Some("https://evil.example")))
        .await
        .unwrap_err();
    assert!(cross.to_string().contains("403"), "{cross}");
    let mut same = connect(&app, WsAuth::Cookie(&cookie, Some(&app.address)))
        .await
        .unwrap();
    subscribe(&mut same, &["device-status"]).await;
}

/// Reads `/metrics` and returns the value of an unlabelled metric.
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.metrics().await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("wafleet_{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A client that stops reading is closed with 1013 once its backlog passes the limit, and the
/// daemon's memory stays bounded while 25 MB of events are published at it.
#[actix_web::test]
async fn a_subscriber_that_does_not_read_is_closed_with_1013() {
    let app = spawn_app_with(Backend::Sqlite, &[("WAFLEET__WS__MAX_PENDING_KIB", "64")])
        .await
        .unwrap();
    let admin = app.admin().await;
    let token = token_for(&admin, &["read"]).await;
    let mut ws = connect(&app, WsAuth::Bearer(&token)).await.unwrap();
    subscribe(&mut ws, &["device-status"]).await;
    let rss_before = rss_kib();
    let big = "x".repeat(64 * 1024);
    for _ in 0..400 {
        let mut event = test_event(admin.tenant_id, "BULK");
        event.data = json!({ "blob": big });
        app.state.hub.do_send(event);
    }
    wait_until(
        "the slow subscriber to be closed",
        Duration::from_secs(30),
        || async { (metric(&app, "ws_slow_closed_total").await >= 1.0).then_some(()) },
    )
    .await;
    let growth_mib = rss_kib().saturating_sub(rss_before) / 1024;
    assert!(
        growth_mib < 64,
        "RSS grew {growth_mib} MiB for a stuck subscriber"
    );
    // Now read: frames that were already on their way, then the close frame.
    let close = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(message) = ws.next().await {
            if let Ok(Message::Close(frame)) = message {
                return frame;
            }
        }
        None
    })
    .await
    .unwrap()
    .expect("a close frame");
    assert_eq!(close.code, CloseCode::Again, "{close:?}");
    wait_until(
        "the session to be gone",
        Duration::from_secs(10),
        || async { (metric(&app, "ws_sessions").await == 0.0).then_some(()) },
    )
    .await;
}

/// 10,000 connect/subscribe/disconnect cycles leave no session or subscription behind.
#[actix_web::test]
async fn session_churn_leaves_nothing_behind() {
    const SESSIONS: usize = 10_000;
    const PARALLEL: usize = 50;
    let app = crate::helpers::spawn_app(Backend::Sqlite).await.unwrap();
    let admin = app.admin().await;
    let token = token_for(&admin, &["read"]).await;
    let app_ref = &app;
    let token_ref = token.as_str();
    futures::stream::iter(0..SESSIONS)
        .for_each_concurrent(PARALLEL, |n| async move {
            let mut ws = connect(app_ref, WsAuth::Bearer(token_ref)).await.unwrap();
            if n % 2 == 0 {
                subscribe(&mut ws, &["device-status"]).await;
            }
            let _ = ws.close(None).await;
        })
        .await;
    wait_until(
        "every session and subscription to be released",
        Duration::from_secs(30),
        || async {
            let sessions = metric(&app, "ws_sessions").await;
            let subscriptions = metric(&app, "hub_subscriptions").await;
            (sessions == 0.0 && subscriptions == 0.0).then_some(())
        },
    )
    .await;
}

/// Two daemons on one PostgreSQL database and one Redis: an event of daemon 1 reaches a
/// subscriber of daemon 2 exactly once.
#[actix_web::test]
async fn two_daemons_share_events_over_redis() {
    let Some(redis_url) = std::env::var("REDIS_URL").ok() else {
        eprintln!("skipped two_daemons_share_events_over_redis: REDIS_URL is not set");
        return;
    };
    let Some(database) = TestDatabase::create(Backend::Postgres).await else {
        eprintln!("skipped two_daemons_share_events_over_redis: DATABASE_URL is not set");
        return;
    };
    let channel = format!("wafleet-test:{}", uuid::Uuid::new_v4().simple());
    let shared = [
        ("REDIS_URL", redis_url.as_str()),
        ("WAFLEET__REDIS__CHANNEL", channel.as_str()),
    ];
    let first = spawn_app_on(&database, &shared).await;
    let second = spawn_app_on(&database, &shared).await;
    let admin_one = first.admin().await;
    let admin_two = second.admin().await;
    let token = token_for(&admin_two, &["read"]).await;
    let mut ws = connect(&second, WsAuth::Bearer(&token)).await.unwrap();
    subscribe(&mut ws, &["device-status"]).await;
    // The bridge subscribes asynchronously: publish until daemon 2 hears daemon 1.
    wait_until(
        "the bridge to carry events",
        Duration::from_secs(15),
        || {
            first
                .state
                .hub
                .do_send(test_event(admin_one.tenant_id, "PROBE"));
            async { Some(()) }
        },
    )
    .await;
    next_json(&mut ws, |v| v["event"] == "PROBE").await;

    let created: Value = admin_one
        .post("/api/v1/devices", &json!({"name": "remote"}))
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap();
    next_json(&mut ws, |v| {
        v["event"] == "QR_UPDATED" && v["data"]["device_id"] == id
    })
    .await;
    admin_one
        .post("/api/v1/sim/scan", &json!({"device_id": id}))
        .await;
    next_json(&mut ws, |v| is_status(v, id, "online")).await;
    // A marker after the event: anything between is a duplicate.
    first
        .state
        .hub
        .do_send(test_event(admin_one.tenant_id, "MARKER"));
    let mut duplicates = 0;
    let _ = next_json(&mut ws, |v| {
        if is_status(v, id, "online") {
            duplicates += 1;
        }
        v["event"] == "MARKER"
    })
    .await;
    assert_eq!(duplicates, 0, "the online event arrived more than once");
}

/// With Redis unreachable, local subscribers still get every event.
#[actix_web::test]
async fn local_delivery_survives_a_dead_redis() {
    let app = spawn_app_with(Backend::Sqlite, &[("REDIS_URL", "redis://127.0.0.1:1")])
        .await
        .unwrap();
    let admin = app.admin().await;
    let token = token_for(&admin, &["read"]).await;
    let mut ws = connect(&app, WsAuth::Bearer(&token)).await.unwrap();
    subscribe(&mut ws, &["device-status"]).await;
    app.state.hub.do_send(test_event(admin.tenant_id, "LOCAL"));
    next_json(&mut ws, |v| v["event"] == "LOCAL").await;
}

//! Outbound webhooks end to end, on both backends: a local receiver (a real HTTP server in the
//! test) gets every event type, signed; an outage is retried and drained; a 410 switches the
//! endpoint off; SSRF targets, bad schemes and unknown event types are refused with 422; another
//! tenant sees none of it. The SIGKILL drill is in `fault_webhooks`.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};

use wafleet::broadcast::webhook::verify_signature;
use wafleet::webhooks::events::EventType;

use crate::campaigns::{create, seed_leads, start, test_pacing, wait_status, FAST_SIM};
use crate::helpers::{wait_until, TestApp, UserClient};

/// Loopback receivers are allowed here (the SSRF guard is tested with it off in
/// `ssrf_targets_are_refused`); retries come quickly; sequences tick often.
pub(crate) const WEBHOOK_TEST: &[(&str, &str)] = &[
    ("WAFLEET__WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true"),
    ("WAFLEET__WEBHOOKS__RETRY_BASE_MS", "200"),
    ("WAFLEET__WEBHOOKS__RETRY_MAX_SECS", "1"),
    ("WAFLEET__WEBHOOKS__TIMEOUT_SECS", "2"),
    ("WAFLEET__BROADCAST__SEQUENCE_TICK_MS", "200"),
];

crate::both_backends!(with &[super::FAST_SIM, super::WEBHOOK_TEST].concat();
    every_event_type_reaches_the_receiver_signed,
    an_outage_is_retried_and_drained,
    a_gone_receiver_switches_its_endpoint_off,
    endpoints_are_validated_and_tenant_scoped,
);

crate::both_backends!(with &[super::FAST_SIM, super::WEBHOOK_TEST, super::LONG_TIMEOUT].concat();
    a_receiver_that_times_out_holds_up_no_other,
);

/// A receiver timeout long enough that a loaded machine delivers five events to a quick
/// endpoint while the stuck one still holds its first attempt.
const LONG_TIMEOUT: &[(&str, &str)] = &[("WAFLEET__WEBHOOKS__TIMEOUT_SECS", "10")];

crate::both_backends!(ssrf_targets_are_refused,);

const WAIT: Duration = Duration::from_secs(60);

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

#[derive(Default)]
struct Script {
    received: Vec<Received>,
    /// Requests that reached the receiver, answered or not yet.
    arrivals: usize,
    /// Statuses to answer, in order; 200 once empty.
    answers: VecDeque<u16>,
    /// While set, every request is answered with this status.
    outage: Option<u16>,
    /// How long each answer takes.
    delay: Duration,
}

/// A local HTTP receiver recording every request.
#[derive(Clone)]
pub(crate) struct Receiver {
    script: Arc<Mutex<Script>>,
    pub url: String,
}

impl Receiver {
    /// Starts a receiver on a free loopback port.
    pub async fn start() -> Receiver {
        let script = Arc::new(Mutex::new(Script::default()));
        let shared = script.clone();
        let server = HttpServer::new(move || {
            let shared = shared.clone();
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let shared = shared.clone();
                async move {
                    let delay = {
                        let mut script = shared.lock().unwrap();
                        script.arrivals += 1;
                        script.delay
                    };
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let headers = req
                        .headers()
                        .iter()
                        .map(|(k, v)| {
                            (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                        })
                        .collect();
                    let mut script = shared.lock().unwrap();
                    let status = script
                        .outage
                        .or_else(|| script.answers.pop_front())
                        .unwrap_or(200);
                    if status < 300 {
                        script.received.push(Received {
                            headers,
                            body: body.to_vec(),
                        });
                    }
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                        .body(format!("answered {status}"))
                }
            }))
        })
        .workers(2)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        actix_web::rt::spawn(server.run());
        Receiver {
            script,
            url: format!("http://127.0.0.1:{port}/hooks"),
        }
    }

    /// What was accepted (2xx) so far.
    pub fn received(&self) -> Vec<Received> {
        self.script.lock().unwrap().received.clone()
    }

    /// How many requests reached the receiver, answered or still waiting for their answer.
    pub fn arrivals(&self) -> usize {
        self.script.lock().unwrap().arrivals
    }

    /// Answers `status` to everything until [`Receiver::recover`].
    pub fn fail_with(&self, status: u16) {
        self.script.lock().unwrap().outage = Some(status);
    }

    /// Answers 200 again.
    pub fn recover(&self) {
        self.script.lock().unwrap().outage = None;
    }

    /// Makes every answer take `delay`.
    pub fn slow_down(&self, delay: Duration) {
        self.script.lock().unwrap().delay = delay;
    }
}

/// Registers an endpoint; answers (id, secret).
pub(crate) async fn endpoint(user: &UserClient, body: Value) -> (i64, String) {
    let answer = user.post("/api/v1/webhooks/endpoints", &body).await;
    let status = answer.status();
    let created: Value = answer.json().await.unwrap();
    assert_eq!(status, 201, "{created}");
    (
        created["endpoint"]["id"].as_i64().unwrap(),
        created["secret"].as_str().unwrap().to_string(),
    )
}

/// Checks a delivery's signature and headers against its body.
pub(crate) fn assert_signed(received: &Received, secret: &str, tenant_id: i64) {
    let timestamp = received.header("x-wafleet-timestamp");
    verify_signature(
        secret,
        timestamp,
        &received.body,
        received.header("x-wafleet-signature"),
    )
    .unwrap_or_else(|e| {
        panic!(
            "bad signature ({e:?}) on {}",
            String::from_utf8_lossy(&received.body)
        )
    });
    let body = received.json();
    assert_eq!(
        received.header("x-wafleet-event"),
        body["type"].as_str().unwrap()
    );
    assert_eq!(
        received.header("x-wafleet-event-id"),
        body["id"].as_str().unwrap()
    );
    assert_eq!(received.header("x-wafleet-tenant"), tenant_id.to_string());
    assert_eq!(body["tenant_id"], tenant_id);
    assert!(received
        .header("content-type")
        .starts_with("application/json"));
}

/// The event types received so far.
pub(crate) fn types_of(received: &[Received]) -> BTreeSet<String> {
    received
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_string())
        .collect()
}

async fn every_event_type_reaches_the_receiver_signed(app: TestApp) {
    let receiver = Receiver::start().await;
    // The simulator's controls are the platform admin's, for the devices of its own tenant.
    let owner = app.admin().await;
    let (endpoint_id, secret) =
        endpoint(&owner, json!({"url": receiver.url, "description": "CRM"})).await;

    // A test event, on request.
    let test = owner
        .post(
            &format!("/api/v1/webhooks/endpoints/{endpoint_id}/test"),
            &json!({}),
        )
        .await;
    assert_eq!(test.status(), 202);

    // Device: QR, status, and later logged out.
    let device = app.paired_device(&owner, "Sales").await;
    // Messages in and out, receipts, reactions, edits, deletions, chats.
    let phone = "60198765432";
    let inbound = |extra: Value| {
        let mut body = json!({"device_id": device, "from": phone, "addressing": "phone"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let owner = &owner;
        async move {
            let answer = owner.post("/api/v1/sim/inbound", &body).await;
            let status = answer.status();
            let value: Value = answer.json().await.unwrap();
            assert_eq!(status, 200, "{body} → {value}");
            value["id"].as_str().unwrap().to_string()
        }
    };
    // A change names a message the mirror has stored.
    let stored = |id: String| {
        let owner = &owner;
        async move {
            wait_until("the message to be mirrored", WAIT, || async {
                let chat = format!("{phone}@s.whatsapp.net");
                let messages = owner.chat_messages(device, &chat).await;
                messages
                    .iter()
                    .any(|m| m["id"] == id.as_str())
                    .then_some(())
            })
            .await;
            id
        }
    };
    let question = stored(inbound(json!({"text": "Is the blue one in stock?"})).await).await;
    inbound(json!({"target": question, "change": {"reaction": {"emoji": "👍"}}})).await;
    let typo = stored(inbound(json!({"text": "and in rde?"})).await).await;
    inbound(json!({"target": typo, "change": {"edit": {"text": "and in red?"}}})).await;
    inbound(json!({"target": typo, "change": "revoke"})).await;
    let sent = owner
        .post(
            &format!("/api/v1/devices/{device}/messages"),
            &json!({"to": phone, "text": "Yes, 3 left"}),
        )
        .await;
    assert!(sent.status().is_success());

    // Leads: one created, a list imported, a number opted out.
    let list: Value = owner
        .post("/api/v1/lead-lists", &json!({"name": "Walk-ins"}))
        .await
        .json()
        .await
        .unwrap();
    let list_id = list["id"].as_i64().unwrap();
    let lead = owner
        .post(
            "/api/v1/leads",
            &json!({"list_id": list_id, "phone": "60123456781", "name": "Aisyah"}),
        )
        .await;
    assert_eq!(lead.status(), 201);
    let import = owner
        .client
        .post(app.url(&format!("/api/v1/lead-lists/{list_id}/import")))
        .header("x-csrf-token", &owner.csrf)
        .header("content-type", "text/csv")
        .body("phone,name\n60122222222,Ben\n")
        .send()
        .await
        .unwrap();
    assert!(
        import.status().is_success(),
        "{}",
        import.text().await.unwrap()
    );
    let opt_out = owner
        .post("/api/v1/opt-outs", &json!({"phone": "60133333333"}))
        .await;
    assert_eq!(opt_out.status(), 201);

    // A campaign runs to completion; a one-step sequence sends and ends.
    let campaign_list = seed_leads(&app, owner.tenant_id, "Expo", 2, 0).await;
    let campaign = create(
        &owner,
        json!({"name": "Launch", "message": "Hi {name}", "target": {"list_ids": [campaign_list]},
               "pacing": test_pacing()}),
    )
    .await;
    start(&owner, campaign).await;
    wait_status(&owner, campaign, "completed").await;
    let sequence: Value = owner
        .post(
            "/api/v1/sequences",
            &json!({"name": "Welcome", "steps": [{"message": "Welcome {name}"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let sequence_id = sequence["id"].as_i64().unwrap();
    let lead_id: i64 = {
        let leads: Value = owner
            .get(&format!("/api/v1/leads?list_id={campaign_list}"))
            .await
            .json()
            .await
            .unwrap();
        leads["items"][0]["id"].as_i64().unwrap()
    };
    let enrolled = owner
        .post(
            &format!("/api/v1/sequences/{sequence_id}/enrollments"),
            &json!({"lead_ids": [lead_id]}),
        )
        .await;
    assert!(enrolled.status().is_success());
    wait_until("the enrolment to complete", WAIT, || {
        let receiver = receiver.clone();
        async move {
            types_of(&receiver.received())
                .contains("sequence.enrollment_ended")
                .then_some(())
        }
    })
    .await;
    let logout = owner
        .post(&format!("/api/v1/devices/{device}/logout"), &json!({}))
        .await;
    assert!(logout.status().is_success());

    // Quarantines need a rate-limited device mid-campaign: tests/api/quarantine.rs has them.
    let wanted: BTreeSet<String> = EventType::ALL
        .iter()
        .filter(|t| {
            !matches!(
                t,
                EventType::DeviceQuarantined | EventType::DeviceQuarantineLifted
            )
        })
        .map(|t| t.as_str().to_string())
        .collect();
    let received = wait_until("every event type", WAIT, || {
        let receiver = receiver.clone();
        let wanted = wanted.clone();
        async move {
            let received = receiver.received();
            let types = types_of(&received);
            wanted.is_subset(&types).then_some(received)
        }
    })
    .await;
    let mut ids = BTreeSet::new();
    for r in &received {
        assert_signed(r, &secret, owner.tenant_id);
        let body = r.json();
        assert!(
            ids.insert(body["id"].as_str().unwrap().to_string()),
            "event delivered twice: {body}"
        );
        assert!(body["time"].as_str().unwrap().ends_with('Z'));
    }
    let by_type = |kind: &str| {
        received
            .iter()
            .map(Received::json)
            .find(|b| b["type"] == kind)
            .unwrap()
    };
    assert_eq!(by_type("message.received")["device_id"], device);
    assert_eq!(by_type("message.received")["data"]["from_me"], false);
    assert_eq!(by_type("message.sent")["data"]["text"], "Yes, 3 left");
    assert_eq!(by_type("message.edited")["data"]["text"], "and in red?");
    assert_eq!(by_type("message.revoked")["data"]["id"], typo.as_str());
    assert_eq!(by_type("lead.created")["data"]["phone"], "60123456781");
    assert_eq!(by_type("lead.created")["data"]["via"], "api");
    assert_eq!(by_type("lead.imported")["data"]["imported"], 1);
    assert_eq!(by_type("lead.opted_out")["data"]["phone"], "60133333333");
    assert_eq!(
        by_type("campaign.completed")["data"]["campaign_id"],
        campaign
    );
    assert_eq!(
        by_type("sequence.step_sent")["data"]["sequence_id"],
        sequence_id
    );
    assert_eq!(
        by_type("sequence.enrollment_ended")["data"]["status"],
        "completed"
    );
    assert_eq!(by_type("webhook.test")["data"]["endpoint_id"], endpoint_id);
    let completions = received
        .iter()
        .filter(|r| r.json()["type"] == "campaign.completed")
        .count();
    assert_eq!(completions, 1, "a campaign completes once");

    // The log has every delivery as delivered, with its answer.
    let log: Value = owner
        .get(&format!(
            "/api/v1/webhooks/deliveries?endpoint_id={endpoint_id}&event_type=message.sent"
        ))
        .await
        .json()
        .await
        .unwrap();
    let entry = &log["items"][0];
    assert_eq!(entry["status"], "delivered", "{log}");
    assert_eq!(entry["response_status"], 200);
    assert_eq!(entry["response_body"], "answered 200");
    assert!(entry["latency_ms"].as_i64().is_some());
}

/// The endpoint as its owner reads it (`None` when the answer is not JSON).
async fn endpoint_view(owner: &UserClient, endpoint_id: i64) -> Option<Value> {
    owner
        .get(&format!("/api/v1/webhooks/endpoints/{endpoint_id}"))
        .await
        .json()
        .await
        .ok()
}

/// Waits until the endpoint is shown failing (`failing_since` set), or healthy again.
async fn wait_for_health(owner: &UserClient, endpoint_id: i64, failing: bool) {
    let what = if failing { "failing" } else { "healthy" };
    wait_until(
        &format!("the endpoint to be shown {what}"),
        WAIT,
        || async {
            let endpoint = endpoint_view(owner, endpoint_id).await?;
            (endpoint["failing_since"].is_string() == failing).then_some(())
        },
    )
    .await;
}

async fn an_outage_is_retried_and_drained(app: TestApp) {
    let receiver = Receiver::start().await;
    let owner = app.new_tenant("Acme").await;
    let (endpoint_id, secret) = endpoint(
        &owner,
        json!({"url": receiver.url, "events": ["lead.created"]}),
    )
    .await;
    let list: Value = owner
        .post("/api/v1/lead-lists", &json!({"name": "Web"}))
        .await
        .json()
        .await
        .unwrap();
    let list_id = list["id"].as_i64().unwrap();
    receiver.fail_with(503);
    for n in 0..20 {
        let created = owner
            .post(
                "/api/v1/leads",
                &json!({"list_id": list_id, "phone": format!("6012{n:07}")}),
            )
            .await;
        assert_eq!(created.status(), 201);
    }
    // Every delivery has failed at least once and waits for its retry.
    wait_until("every delivery to fail once", WAIT, || async {
        let log: Value = owner
            .get(&format!(
                "/api/v1/webhooks/deliveries?endpoint_id={endpoint_id}&limit=200"
            ))
            .await
            .json()
            .await
            .ok()?;
        let items = log["items"].as_array()?;
        (items.len() == 20
            && items
                .iter()
                .all(|d| d["attempts"].as_i64() >= Some(1) && d["response_status"] == 503))
        .then_some(())
    })
    .await;
    // The endpoint's health is written beside the attempts, not with them.
    wait_for_health(&owner, endpoint_id, true).await;
    assert!(receiver.received().is_empty());

    receiver.recover();
    let received = wait_until("the backlog to drain", WAIT, || {
        let receiver = receiver.clone();
        async move {
            let received = receiver.received();
            (received.len() >= 20).then_some(received)
        }
    })
    .await;
    let phones: BTreeSet<String> = received
        .iter()
        .map(|r| {
            assert_signed(r, &secret, owner.tenant_id);
            r.json()["data"]["phone"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(phones.len(), 20, "every lead once");
    wait_for_health(&owner, endpoint_id, false).await;

    // A delivered event can be replayed: the same event id arrives again. The log shows a
    // delivery as delivered once its outcome is written, which may follow the receipt.
    let delivery = wait_until("a delivery logged as delivered", WAIT, || async {
        let log: Value = owner
            .get(&format!(
                "/api/v1/webhooks/deliveries?endpoint_id={endpoint_id}&status=delivered&limit=1"
            ))
            .await
            .json()
            .await
            .ok()?;
        let first = &log["items"][0];
        first.is_object().then(|| first.clone())
    })
    .await;
    let delivery = &delivery;
    let replayed = owner
        .post(
            &format!("/api/v1/webhooks/deliveries/{}/replay", delivery["id"]),
            &json!({}),
        )
        .await;
    assert_eq!(replayed.status(), 202);
    let event_id = delivery["event_id"].as_str().unwrap().to_string();
    wait_until("the replay", WAIT, || {
        let receiver = receiver.clone();
        let event_id = event_id.clone();
        async move {
            let times = receiver
                .received()
                .iter()
                .filter(|r| r.header("x-wafleet-event-id") == event_id)
                .count();
            (times == 2).then_some(())
        }
    })
    .await;
}

async fn a_gone_receiver_switches_its_endpoint_off(app: TestApp) {
    let receiver = Receiver::start().await;
    let owner = app.new_tenant("Acme").await;
    let (endpoint_id, _) = endpoint(&owner, json!({"url": receiver.url})).await;
    receiver.fail_with(410);
    owner
        .post(
            &format!("/api/v1/webhooks/endpoints/{endpoint_id}/test"),
            &json!({}),
        )
        .await;
    let endpoint: Value = wait_until("the endpoint to be switched off", WAIT, || async {
        let endpoint = endpoint_view(&owner, endpoint_id).await?;
        (endpoint["active"] == false).then_some(endpoint)
    })
    .await;
    assert!(
        endpoint["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("410"),
        "{endpoint}"
    );
    let log: Value = wait_until("the delivery to be given up", WAIT, || async {
        let log: Value = owner
            .get("/api/v1/webhooks/deliveries")
            .await
            .json()
            .await
            .ok()?;
        (log["items"][0]["status"] == "dead").then_some(log)
    })
    .await;
    assert_eq!(log["items"][0]["response_status"], 410, "{log}");
    let actions = wafleet::audit::recent_actions(&app.db, owner.tenant_id, 20)
        .await
        .unwrap();
    assert!(
        actions.iter().any(|a| a == "webhook.endpoint.disabled"),
        "{actions:?}"
    );

    // Switched on again, a replay goes out once the receiver is back.
    receiver.recover();
    let on = owner
        .request(
            reqwest::Method::PATCH,
            &format!("/api/v1/webhooks/endpoints/{endpoint_id}"),
        )
        .json(&json!({"active": true}))
        .send()
        .await
        .unwrap();
    let on: Value = on.json().await.unwrap();
    assert_eq!(on["active"], true);
    assert!(on["disabled_reason"].is_null(), "{on}");
    let dead = log["items"][0]["id"].as_i64().unwrap();
    let replay = owner
        .post(
            &format!("/api/v1/webhooks/deliveries/{dead}/replay"),
            &json!({}),
        )
        .await;
    assert_eq!(replay.status(), 202);
    wait_until("the replayed test event", WAIT, || {
        let receiver = receiver.clone();
        async move { (!receiver.received().is_empty()).then_some(()) }
    })
    .await;
}

async fn endpoints_are_validated_and_tenant_scoped(app: TestApp) {
    let receiver = Receiver::start().await;
    let owner = app.new_tenant("Acme").await;
    for (body, needle) in [
        (json!({"url": "ftp://example.com/x"}), "scheme"),
        (json!({"url": "not a url"}), "url"),
        (json!({"url": "https://u:p@example.com/"}), "password"),
        (
            json!({"url": receiver.url, "events": ["message.bogus"]}),
            "unknown event type",
        ),
        (
            json!({"url": receiver.url, "events": ["webhook.test"]}),
            "unknown event type",
        ),
        (
            json!({"url": receiver.url, "device_ids": [999999]}),
            "no device 999999",
        ),
        (
            json!({"url": receiver.url, "max_concurrency": 0}),
            "max_concurrency",
        ),
        (
            json!({"url": receiver.url, "rate_per_second": 100000}),
            "rate_per_second",
        ),
        (
            json!({"url": receiver.url, "description": "x".repeat(201)}),
            "description",
        ),
        (json!({}), "url: required"),
    ] {
        let answer = owner.post("/api/v1/webhooks/endpoints", &body).await;
        assert_eq!(answer.status(), 422, "{body}");
        let error: Value = answer.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_webhook");
        assert!(
            error["error"]["message"].as_str().unwrap().contains(needle),
            "{body}: {error}"
        );
    }
    let device = app.paired_device(&owner, "Only").await;
    let (id, secret) = endpoint(
        &owner,
        json!({"url": receiver.url, "events": ["message.received"], "device_ids": [device]}),
    )
    .await;
    let listed: Value = owner
        .get("/api/v1/webhooks/endpoints")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["events"], json!(["message.received"]));
    assert_eq!(listed[0]["device_ids"], json!([device]));
    assert!(
        !listed.to_string().contains(&secret),
        "the secret is shown only once"
    );

    // Another tenant: sees nothing, changes nothing, and hears none of these events.
    let other = app.new_tenant("Other").await;
    let theirs: Value = other
        .get("/api/v1/webhooks/endpoints")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs, json!([]));
    assert_eq!(
        other
            .get(&format!("/api/v1/webhooks/endpoints/{id}"))
            .await
            .status(),
        404
    );
    let patch = other
        .request(
            reqwest::Method::PATCH,
            &format!("/api/v1/webhooks/endpoints/{id}"),
        )
        .json(&json!({"active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 404);
    assert_eq!(
        other
            .post(&format!("/api/v1/webhooks/endpoints/{id}/test"), &json!({}))
            .await
            .status(),
        404
    );
    let log: Value = other
        .get("/api/v1/webhooks/deliveries")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(log["items"], json!([]));
    let other_receiver = Receiver::start().await;
    endpoint(&other, json!({"url": other_receiver.url})).await;
    // Members of the first tenant cannot manage endpoints either.
    let member = app.create_user(owner.tenant_id, "member").await;
    assert_eq!(member.get("/api/v1/webhooks/endpoints").await.status(), 403);

    let sim = app.state.fleet.sim.clone().unwrap();
    sim.deliver_inbound(device, "60198765432", "hello")
        .await
        .unwrap();
    let got = wait_until("the filtered event", WAIT, || {
        let receiver = receiver.clone();
        async move {
            let received = receiver.received();
            (!received.is_empty()).then_some(received)
        }
    })
    .await;
    assert_eq!(got[0].json()["type"], "message.received");
    let deleted = owner
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/webhooks/endpoints/{id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    // Only the endpoint's own types went out (no chat.updated), and nothing to the other tenant.
    assert!(types_of(&receiver.received())
        .iter()
        .all(|t| t == "message.received"));
    assert!(other_receiver.received().is_empty());
}

async fn ssrf_targets_are_refused(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    for url in [
        "http://127.0.0.1:8080/x",
        "http://localhost/x",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.5/x",
        "http://[::1]/x",
        "http://[::ffff:192.168.0.1]/x",
    ] {
        let answer = owner
            .post("/api/v1/webhooks/endpoints", &json!({"url": url}))
            .await;
        assert_eq!(answer.status(), 422, "{url}");
        let error: Value = answer.json().await.unwrap();
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("private"),
            "{url}: {error}"
        );
    }
    // A public name is accepted when saved; the resolver checks it again at delivery time.
    let ok = owner
        .post(
            "/api/v1/webhooks/endpoints",
            &json!({"url": "https://hooks.example.com/in"}),
        )
        .await;
    assert_eq!(ok.status(), 201);
}

async fn a_receiver_that_times_out_holds_up_no_other(app: TestApp) {
    let stuck = Receiver::start().await;
    // Longer than webhooks.timeout_secs (10 s here): every attempt times out.
    stuck.slow_down(Duration::from_secs(30));
    let quick = Receiver::start().await;
    let owner = app.new_tenant("Acme").await;
    let (stuck_id, _) = endpoint(
        &owner,
        json!({"url": stuck.url, "events": ["lead.created"], "max_concurrency": 1}),
    )
    .await;
    endpoint(
        &owner,
        json!({"url": quick.url, "events": ["lead.created"]}),
    )
    .await;
    let list: Value = owner
        .post("/api/v1/lead-lists", &json!({"name": "Web"}))
        .await
        .json()
        .await
        .unwrap();
    let list_id = list["id"].as_i64().unwrap();
    for n in 0..5 {
        let created = owner
            .post(
                "/api/v1/leads",
                &json!({"list_id": list_id, "phone": format!("6012{n:07}")}),
            )
            .await;
        assert_eq!(created.status(), 201);
    }
    wait_until("the quick receiver's events", WAIT, || {
        let quick = quick.clone();
        async move { (quick.received().len() == 5).then_some(()) }
    })
    .await;
    // Had the quick endpoint waited behind the stuck one, the stuck one's first attempt would
    // have timed out (and a retry arrived) before the quick one saw all five.
    assert!(
        stuck.arrivals() <= 1,
        "the quick endpoint got its events only after the stuck one's first attempt timed out"
    );
    // One attempt at a time on the stuck endpoint: the others wait their turn, never the quick one's.
    wait_until("a timed-out attempt in the log", WAIT, || async {
        let log: Value = owner
            .get(&format!(
                "/api/v1/webhooks/deliveries?endpoint_id={stuck_id}&status=pending"
            ))
            .await
            .json()
            .await
            .ok()?;
        log["items"]
            .as_array()?
            .iter()
            .any(|d| {
                d["attempts"].as_i64() >= Some(1)
                    && d["error"].as_str().is_some_and(|e| e.contains("timed out"))
            })
            .then_some(())
    })
    .await;
}

//! Every route's access rules, table-driven: unauthenticated → 401, a role below the route's
//! requirement → 403, a read-only token on a write route → 403, another tenant's ids → 404.
//! Signed routes (the inbound webhook) need no session but refuse anything unsigned with 401,
//! a session or token included.
//! Adding a route means adding one line to `ROUTES`; a test fails when a documented route is
//! missing from the table.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};

use wafleet::broadcast::leads::{self, model::LeadInput};

use crate::helpers::{TestApp, UserClient};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Access {
    /// No credentials needed.
    Public,
    /// No session, but a request signature (the inbound webhook): 401 without one, whoever
    /// sends it.
    Signed,
    Viewer,
    Member,
    Owner,
    Admin,
}

/// One line per route: method, path (placeholders `{user}`, `{token}`, `{device}`, `{session}`
/// (the tenant owner's own session)), access, and
/// a valid body (so the 404 check for another tenant's ids is not answered by validation).
#[rustfmt::skip]
fn routes() -> Vec<(&'static str, &'static str, Access, Value)> {
    use Access::*;
    let none = json!({});
    let campaign = json!({"name": "x", "message": "Hi", "target": {"list_ids": [1]}});
    let sequence = json!({"name": "x", "steps": [{"message": "Hi"}]});
    vec![
        ("GET", "/healthz", Public, none.clone()),
        ("GET", "/readyz", Public, none.clone()),
        ("GET", "/metrics", Admin, none.clone()),
        ("POST", "/api/v1/auth/login", Public, none.clone()),
        ("POST", "/api/v1/auth/signup", Public, none.clone()),
        ("POST", "/api/v1/auth/logout", Viewer, none.clone()),
        ("GET", "/api/v1/me", Viewer, none.clone()),
        ("POST", "/api/v1/me/password", Viewer, none.clone()),
        ("GET", "/api/v1/me/sessions", Viewer, none.clone()),
        ("DELETE", "/api/v1/me/sessions/{session}", Viewer, none.clone()),
        ("GET", "/api/v1/tenant", Viewer, none.clone()),
        ("PATCH", "/api/v1/tenant", Owner, json!({"name": "x"})),
        ("GET", "/api/v1/settings/retention", Viewer, none.clone()),
        ("GET", "/api/v1/users", Owner, none.clone()),
        ("POST", "/api/v1/users", Owner, none.clone()),
        ("GET", "/api/v1/users/{user}", Owner, none.clone()),
        ("PATCH", "/api/v1/users/{user}", Owner, json!({"display_name": "x"})),
        ("DELETE", "/api/v1/users/{user}", Owner, none.clone()),
        ("POST", "/api/v1/users/{user}/password-reset", Owner, none.clone()),
        ("GET", "/api/v1/users/{user}/devices", Owner, none.clone()),
        ("PUT", "/api/v1/users/{user}/devices", Owner, json!({"device_ids": []})),
        ("GET", "/api/v1/tokens", Owner, none.clone()),
        ("POST", "/api/v1/tokens", Owner, none.clone()),
        ("DELETE", "/api/v1/tokens/{token}", Owner, none.clone()),
        ("GET", "/api/v1/ws", Viewer, none.clone()),
        ("GET", "/api/v1/devices", Viewer, none.clone()),
        ("POST", "/api/v1/devices", Owner, none.clone()),
        ("GET", "/api/v1/devices/{device}", Viewer, none.clone()),
        ("PATCH", "/api/v1/devices/{device}", Owner, json!({"name": "x"})),
        ("DELETE", "/api/v1/devices/{device}", Owner, none.clone()),
        ("GET", "/api/v1/devices/{device}/qr.svg", Member, none.clone()),
        ("GET", "/api/v1/devices/{device}/health", Viewer, none.clone()),
        ("POST", "/api/v1/devices/{device}/drain", Owner, json!({"hours": 1})),
        ("DELETE", "/api/v1/devices/{device}/quarantine", Owner, none.clone()),
        ("POST", "/api/v1/devices/{device}/pair-code", Member, json!({"phone": "60123456789"})),
        ("POST", "/api/v1/devices/{device}/logout", Owner, none.clone()),
        ("POST", "/api/v1/devices/{device}/reconnect", Member, none.clone()),
        ("GET", "/api/v1/devices/{device}/chats", Viewer, none.clone()),
        ("GET", "/api/v1/devices/{device}/chats/{chat}/messages", Viewer, none.clone()),
        ("POST", "/api/v1/devices/{device}/chats/{chat}/read", Member, none.clone()),
        ("GET", "/api/v1/devices/{device}/groups", Viewer, none.clone()),
        ("GET", "/api/v1/devices/{device}/chats/{chat}/media", Viewer, none.clone()),
        ("GET", "/api/v1/devices/{device}/chats/{chat}/messages/{message}/media", Viewer, none.clone()),
        ("POST", "/api/v1/devices/{device}/messages", Member, json!({"to": "60123456789", "text": "hi"})),
        ("GET", "/api/v1/media/{sha}", Viewer, none.clone()),
        ("GET", "/api/v1/campaigns", Viewer, none.clone()),
        ("POST", "/api/v1/campaigns", Member, none.clone()),
        ("GET", "/api/v1/campaigns/{campaign}", Viewer, none.clone()),
        ("PATCH", "/api/v1/campaigns/{campaign}", Member, campaign.clone()),
        ("DELETE", "/api/v1/campaigns/{campaign}", Member, none.clone()),
        ("PUT", "/api/v1/campaigns/{campaign}/image", Member, none.clone()),
        ("PUT", "/api/v1/campaigns/{campaign}/attachment?kind=document", Member, none.clone()),
        ("POST", "/api/v1/campaigns/{campaign}/start", Member, none.clone()),
        ("POST", "/api/v1/campaigns/{campaign}/retry-failed", Member, none.clone()),
        ("POST", "/api/v1/campaigns/{campaign}/clone", Member, none.clone()),
        ("POST", "/api/v1/campaigns/{campaign}/{action}", Member, none.clone()),
        ("GET", "/api/v1/campaigns/{campaign}/preview", Viewer, none.clone()),
        ("GET", "/api/v1/campaigns/{campaign}/progress", Viewer, none.clone()),
        ("GET", "/api/v1/campaigns/{campaign}/messages", Viewer, none.clone()),
        ("GET", "/api/v1/campaigns/{campaign}/export.csv", Viewer, none.clone()),
        ("POST", "/api/v1/admin/devices/restart", Admin, json!({"ids": [1]})),
        ("GET", "/api/v1/admin/supervision", Admin, none.clone()),
        ("POST", "/api/v1/admin/drain", Admin, none.clone()),
        ("GET", "/api/v1/admin/nodes", Admin, none.clone()),
        ("POST", "/api/v1/admin/nodes/{node}/drain", Admin, none.clone()),
        ("DELETE", "/api/v1/admin/nodes/{node}/drain", Admin, none.clone()),
        ("POST", "/api/v1/sim/scan", Member, json!({"device_id": "{device}"})),
        ("GET", "/api/v1/sim/stats", Admin, none.clone()),
        ("POST", "/api/v1/sim/fault", Admin, json!({"device_id": "{device}", "fault": {"kind": "disconnect"}})),
        ("POST", "/api/v1/sim/inbound", Admin, json!({"device_id": "{device}", "from": "60198765432", "text": "hi"})),
        ("GET", "/api/v1/lead-lists", Viewer, none.clone()),
        ("POST", "/api/v1/lead-lists", Member, json!({"name": "x"})),
        ("GET", "/api/v1/lead-lists/{list}", Viewer, none.clone()),
        ("PATCH", "/api/v1/lead-lists/{list}", Member, json!({"name": "x"})),
        ("DELETE", "/api/v1/lead-lists/{list}", Member, none.clone()),
        ("POST", "/api/v1/lead-lists/{list}/import", Member, none.clone()),
        ("GET", "/api/v1/leads", Viewer, none.clone()),
        ("POST", "/api/v1/leads", Member, json!({"list_id": "{list}", "phone": "0123456789"})),
        ("GET", "/api/v1/leads/{lead}", Viewer, none.clone()),
        ("PATCH", "/api/v1/leads/{lead}", Member, json!({"name": "x"})),
        ("DELETE", "/api/v1/leads/{lead}", Member, none.clone()),
        ("GET", "/api/v1/stats/overview", Viewer, none.clone()),
        ("GET", "/api/v1/stats/chart.svg?chart=sends", Viewer, none.clone()),
        ("GET", "/api/v1/opt-outs", Viewer, none.clone()),
        ("POST", "/api/v1/opt-outs", Member, json!({"phone": "0123456789"})),
        ("DELETE", "/api/v1/opt-outs/{phone}", Owner, none.clone()),
        ("GET", "/api/v1/settings/broadcast", Member, none.clone()),
        ("PUT", "/api/v1/settings/broadcast", Owner, none.clone()),
        ("GET", "/api/v1/lead-pool", Viewer, none.clone()),
        ("GET", "/api/v1/sequences", Viewer, none.clone()),
        ("POST", "/api/v1/sequences", Member, none.clone()),
        ("GET", "/api/v1/sequences/{sequence}", Viewer, none.clone()),
        ("PUT", "/api/v1/sequences/{sequence}", Member, sequence.clone()),
        ("DELETE", "/api/v1/sequences/{sequence}", Member, none.clone()),
        ("POST", "/api/v1/sequences/{sequence}/toggle", Member, none.clone()),
        ("PUT", "/api/v1/sequences/{sequence}/steps/{position}/image", Member, none.clone()),
        ("DELETE", "/api/v1/sequences/{sequence}/steps/{position}/image", Member, none.clone()),
        ("PUT", "/api/v1/sequences/{sequence}/steps/{position}/attachment?kind=document", Member, none.clone()),
        ("GET", "/api/v1/sequences/{sequence}/enrollments", Viewer, none.clone()),
        ("POST", "/api/v1/sequences/{sequence}/enrollments", Member, json!({"lead_ids": [1]})),
        ("DELETE", "/api/v1/sequences/{sequence}/enrollments/{enrollment}", Member, none.clone()),
        ("GET", "/api/v1/sequences/{sequence}/report", Viewer, none.clone()),
        ("GET", "/api/v1/settings/webhook", Owner, none.clone()),
        ("POST", "/api/v1/settings/webhook/secret", Owner, none.clone()),
        ("POST", "/api/v1/webhooks/leads", Signed, json!({"phone": "0123456789"})),
        ("GET", "/api/v1/webhooks/event-types", Owner, none.clone()),
        ("GET", "/api/v1/webhooks/endpoints", Owner, none.clone()),
        ("POST", "/api/v1/webhooks/endpoints", Owner, json!({"url": "https://hooks.example.com/in"})),
        ("GET", "/api/v1/webhooks/endpoints/{endpoint}", Owner, none.clone()),
        ("PATCH", "/api/v1/webhooks/endpoints/{endpoint}", Owner, json!({"description": "x"})),
        ("DELETE", "/api/v1/webhooks/endpoints/{endpoint}", Owner, none.clone()),
        ("POST", "/api/v1/webhooks/endpoints/{endpoint}/secret", Owner, none.clone()),
        ("POST", "/api/v1/webhooks/endpoints/{endpoint}/test", Owner, none.clone()),
        ("GET", "/api/v1/webhooks/deliveries", Owner, none.clone()),
        ("GET", "/api/v1/webhooks/deliveries/{delivery}", Owner, none.clone()),
        ("POST", "/api/v1/webhooks/deliveries/{delivery}/replay", Owner, none.clone()),
        // MCP: each tool checks its REST twin's role and scope (tests/api/mcp.rs).
        ("POST", "/mcp", Viewer, none.clone()),
    ]
}

/// Ids to put into placeholders.
struct Ids {
    user: i64,
    session: i64,
    token: i64,
    device: i64,
    campaign: i64,
    list: i64,
    lead: i64,
    phone: String,
    sequence: i64,
    endpoint: i64,
    delivery: i64,
}

fn fill(path: &str, ids: &Ids) -> String {
    path.replace("{chat}", "60123456789@s.whatsapp.net")
        .replace("{message}", "3EB0NONE")
        .replace("{sha}", &"0".repeat(64))
        .replace("{user}", &ids.user.to_string())
        .replace("{session}", &ids.session.to_string())
        .replace("{token}", &ids.token.to_string())
        .replace("{device}", &ids.device.to_string())
        .replace("{campaign}", &ids.campaign.to_string())
        .replace("{action}", "pause")
        .replace("{list}", &ids.list.to_string())
        .replace("{lead}", &ids.lead.to_string())
        .replace("{phone}", &ids.phone)
        .replace("{sequence}", &ids.sequence.to_string())
        .replace("{position}", "1")
        .replace("{enrollment}", "1")
        .replace("{endpoint}", &ids.endpoint.to_string())
        .replace("{delivery}", &ids.delivery.to_string())
        .replace("{node}", "node-1")
}

/// `body` with `"{device}"` placeholders replaced by the device id.
fn fill_body(body: &Value, ids: &Ids) -> Value {
    serde_json::from_str(
        &body
            .to_string()
            .replace("\"{device}\"", &ids.device.to_string())
            .replace("\"{list}\"", &ids.list.to_string()),
    )
    .unwrap()
}

/// A tenant with one object of every kind a placeholder names.
async fn objects_of(app: &TestApp, owner: &UserClient) -> Ids {
    let member = app.create_user(owner.tenant_id, "member").await;
    let token: Value = owner
        .post(
            "/api/v1/tokens",
            &json!({"name": "fixture", "scopes": ["read"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let device = wafleet::device::store::insert_device(&app.db, owner.tenant_id, "fixture")
        .await
        .unwrap();
    let sessions: Value = owner.get("/api/v1/me/sessions").await.json().await.unwrap();
    let fields = wafleet::broadcast::campaign::model::CampaignFields {
        name: "fixture".into(),
        message: "Hi".into(),
        target: r#"{"tags":["x"]}"#.into(),
        devices: r#"{"mode":"all_online"}"#.into(),
        pacing: "{}".into(),
        on_device_loss: "move".into(),
        kind: "broadcast".into(),
        per_device_limit: None,
    };
    let campaign = wafleet::broadcast::campaign::store::insert_campaign(
        &app.db,
        owner.tenant_id,
        None,
        &fields,
        wafleet::broadcast::campaign::model::CampaignStatus::Draft,
        None,
    )
    .await
    .unwrap();
    let list = leads::store::insert_list(&app.db, owner.tenant_id, "fixture")
        .await
        .unwrap();
    let now = chrono::Utc::now().naive_utc();
    let lead = LeadInput {
        phone: "60123456789".into(),
        ..LeadInput::default()
    };
    let lead = leads::store::insert_lead(&app.db, &lead.into_new(owner.tenant_id, list.id, now))
        .await
        .unwrap();
    // Each tenant opts out a different number, so deleting the other's is a 404.
    let phone = format!("6012{:07}", owner.tenant_id);
    leads::opt_out::add_opt_out(
        &app.db,
        owner.tenant_id,
        &phone,
        leads::opt_out::Source::Manual,
        None,
    )
    .await
    .unwrap();
    let sequence = wafleet::broadcast::sequence::store::insert_sequence(
        &app.db,
        owner.tenant_id,
        None,
        &wafleet::broadcast::sequence::model::SequenceFields {
            name: "fixture".into(),
            description: String::new(),
            trigger_tag: None,
            stop_on_reply: true,
            next_sequence_id: None,
        },
        wafleet::broadcast::sequence::model::SequenceStatus::Paused,
        &[wafleet::broadcast::sequence::model::StepFields {
            message: "Hi".into(),
            delay_minutes: 0,
            window: None,
            on_reply: None,
        }],
    )
    .await
    .unwrap();
    let (endpoint, delivery) = webhook_fixture(app, owner.tenant_id, now).await;
    Ids {
        endpoint,
        delivery,
        sequence: sequence.id,
        user: member.user_id,
        session: sessions[0]["id"].as_i64().unwrap(),
        token: token["id"].as_i64().unwrap(),
        device: device.id,
        campaign: campaign.id,
        list: list.id,
        lead: lead.id,
        phone,
    }
}

/// An outbound webhook endpoint (switched off, so nothing is sent) with one delivery.
async fn webhook_fixture(app: &TestApp, tenant_id: i64, now: chrono::NaiveDateTime) -> (i64, i64) {
    use wafleet::webhooks::{model::EndpointFields, store};
    let fields = EndpointFields {
        url: "https://hooks.example.com/in".into(),
        description: String::new(),
        events: String::new(),
        device_ids: String::new(),
        active: false,
        max_concurrency: 1,
        rate_per_second: 1,
    };
    let endpoint = store::insert_endpoint(&app.db, tenant_id, &fields, "secret", now)
        .await
        .unwrap();
    let delivery = store::enqueue_one(
        &app.db,
        store::NewDelivery {
            tenant_id,
            endpoint_id: endpoint.id,
            event_id: uuid::Uuid::new_v4().to_string(),
            event_type: "webhook.test".into(),
            payload: "{}".into(),
            status: "dead",
            attempts: 1,
            next_attempt_at: now,
            created_at: now,
        },
    )
    .await
    .unwrap();
    (endpoint.id, delivery)
}

crate::both_backends!(every_route_enforces_its_access_rule);

async fn every_route_enforces_its_access_rule(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let mine = objects_of(&app, &owner).await;
    let other_owner = app.new_tenant("Other").await;
    let theirs = objects_of(&app, &other_owner).await;
    let callers = [
        (
            Access::Viewer,
            app.create_user(owner.tenant_id, "viewer").await,
        ),
        (
            Access::Member,
            app.create_user(owner.tenant_id, "member").await,
        ),
        (
            Access::Owner,
            app.create_user(owner.tenant_id, "owner").await,
        ),
    ];
    let read_token: Value = owner
        .post("/api/v1/tokens", &json!({"name": "ro", "scopes": ["read"]}))
        .await
        .json()
        .await
        .unwrap();
    let read_token = read_token["token"].as_str().unwrap().to_string();
    let anonymous = crate::helpers::new_client();
    let admin = app.admin().await;

    for (method, path, access, body) in routes() {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let url = app.url(&fill(path, &mine));
        let label = format!("{method} {path}");
        if access == Access::Public {
            let status = anonymous
                .request(method.clone(), &url)
                .json(&json!({}))
                .send()
                .await
                .unwrap()
                .status();
            assert_ne!(status, 401, "{label} is public");
            continue;
        }
        if access == Access::Signed {
            let unsigned = [
                ("anonymously", anonymous.request(method.clone(), &url)),
                (
                    "with the owner's session",
                    owner.request(method.clone(), &url.replace(&app.address, "")),
                ),
                (
                    "with an API token",
                    anonymous
                        .request(method.clone(), &url)
                        .bearer_auth(&read_token),
                ),
            ];
            for (how, request) in unsigned {
                let response = request.json(&body).send().await.unwrap();
                let status = response.status();
                let answer: Value = response.json().await.unwrap_or_default();
                assert_eq!(status, 401, "{label} unsigned, {how}: {answer}");
                assert_eq!(answer["error"]["code"], "bad_signature", "{label} {how}");
            }
            continue;
        }
        let status = anonymous
            .request(method.clone(), &url)
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401, "{label} without credentials");

        for (role, caller) in &callers {
            if *role < access {
                let status = caller
                    .request(method.clone(), &url.replace(&app.address, ""))
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap()
                    .status();
                assert_eq!(status, 403, "{label} as {role:?}");
            }
        }
        if access >= Access::Member {
            let status = anonymous
                .request(method.clone(), &url)
                .bearer_auth(&read_token)
                .json(&json!({}))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 403, "{label} with a read-only token");
        }
        // Nodes are the platform's, not a tenant's: no other tenant's node to name.
        let names_ids = (path.contains('{') && !path.contains("{node}"))
            || body.to_string().contains("{device}")
            || body.to_string().contains("{list}");
        if names_ids {
            let foreign = fill(path, &theirs);
            let privileged = if access == Access::Admin {
                &admin
            } else {
                &owner
            };
            let response = privileged
                .request(method.clone(), &foreign)
                .json(&fill_body(&body, &theirs))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or_default();
            assert_eq!(status, 404, "{label} with another tenant's ids: {body}");
        }
    }
}

/// Routes of another protocol than the REST API: in the table, not in the OpenAPI document.
const OTHER_PROTOCOLS: &[&str] = &["/mcp"];

/// The table and the OpenAPI document list the same routes (and the table the MCP endpoint).
#[actix_web::test]
async fn the_table_covers_every_documented_route() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    let placeholder = regex_lite_placeholder();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            let path = placeholder(path);
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let table: BTreeSet<(String, String)> = routes()
        .iter()
        .filter(|(_, p, _, _)| !OTHER_PROTOCOLS.contains(p))
        .map(|(m, p, _, _)| {
            // A query string is part of the request, not of the route.
            let route = p.split('?').next().unwrap_or(p);
            (m.to_string(), placeholder(route))
        })
        .collect();
    let missing: Vec<_> = documented.difference(&table).collect();
    let stale: Vec<_> = table.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the access table: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "table rows for routes that do not exist: {stale:?}"
    );
}

/// Normalises `{anything}` to `{}` so `/users/{id}` and `/users/{user}` compare equal.
fn regex_lite_placeholder() -> impl Fn(&str) -> String {
    |path: &str| {
        let mut out = String::new();
        let mut inside = false;
        for c in path.chars() {
            match c {
                '{' => {
                    inside = true;
                    out.push('{');
                }
                '}' => {
                    inside = false;
                    out.push('}');
                }
                _ if inside => {}
                _ => out.push(c),
            }
        }
        out
    }
}

//! The MCP server at `/mcp`, driven by a raw JSON-RPC client over HTTP as an MCP client speaks
//! it (initialize, the initialized notification, `MCP-Protocol-Version` on later calls): every
//! tool is listed, `send_message` reaches the simulated recipient and shows in `list_chats` and
//! `read_messages`, the campaign and lead tools act like their REST twins, and every tool keeps
//! to its caller's tenant, role, devices and token scopes. Without a token there is nothing.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use wafleet::auth::model::NewApiToken;
use wafleet::auth::{secret, store};

use crate::helpers::{wait_until, TestApp, UserClient};

/// No random replies, quick receipts.
const SIM: &[(&str, &str)] = &[
    ("WAFLEET__SIM__REPLY_PROBABILITY", "0"),
    ("WAFLEET__SIM__DELIVERED_AFTER_MS", "20"),
    ("WAFLEET__SIM__READ_AFTER_MS", "20"),
];

crate::both_backends!(with super::SIM;
    chat_tools_send_through_the_simulator_within_the_callers_reach,
    campaign_and_lead_tools_act_as_the_rest_api_does,
);

crate::both_backends!(requests_without_an_api_token_are_refused);

/// The protocol revision the client asks for.
const PROTOCOL: &str = "2025-06-18";

/// Every tool the server offers.
const TOOLS: [&str; 11] = [
    "campaign_progress",
    "create_lead",
    "find_leads",
    "list_campaigns",
    "list_chats",
    "list_devices",
    "pause_campaign",
    "read_messages",
    "resume_campaign",
    "send_message",
    "start_campaign",
];

/// A JSON-RPC client of `/mcp` with one API token, initialized.
struct Mcp {
    client: reqwest::Client,
    url: String,
    token: String,
    ids: AtomicI64,
}

impl Mcp {
    /// Initializes a session as an MCP client does and checks the server's answer.
    async fn connect(app: &TestApp, token: &str) -> Mcp {
        let mcp = Mcp {
            client: crate::helpers::new_client(),
            url: app.url("/mcp"),
            token: token.to_string(),
            ids: AtomicI64::new(1),
        };
        let init = json!({
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "wafleet-test", "version": "1.0"}
        });
        let (status, answer) = mcp.post(&mcp.request("initialize", init), false).await;
        assert_eq!(status, 200, "{answer}");
        let result = &answer["result"];
        assert_eq!(result["protocolVersion"], PROTOCOL, "{answer}");
        assert_eq!(result["serverInfo"]["name"], "wafleet", "{answer}");
        assert!(result["capabilities"]["tools"].is_object(), "{answer}");
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let (status, _) = mcp.post(&initialized, true).await;
        assert_eq!(status, 202);
        mcp
    }

    /// A JSON-RPC request with the next id.
    fn request(&self, method: &str, params: Value) -> Value {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
    }

    /// POSTs one message; `versioned` sends the negotiated protocol version header, as clients
    /// do after initialization.
    async fn post(&self, message: &Value, versioned: bool) -> (StatusCode, Value) {
        let mut request = self
            .client
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .json(message);
        if versioned {
            request = request.header("mcp-protocol-version", PROTOCOL);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The `result` of a JSON-RPC call.
    async fn rpc(&self, method: &str, params: Value) -> Value {
        let (status, answer) = self.post(&self.request(method, params), true).await;
        assert_eq!(status, 200, "{method}: {answer}");
        assert!(answer["error"].is_null(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// The names of the tools listed.
    async fn tool_names(&self) -> BTreeSet<String> {
        let listed = self.rpc("tools/list", json!({})).await;
        listed["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// Calls a tool that must succeed; its structured answer.
    async fn call(&self, tool: &str, arguments: Value) -> Value {
        let result = self.try_call(tool, arguments).await;
        assert_eq!(result["isError"], false, "{tool}: {result}");
        // The same answer as text, for clients that read only the content.
        let text = result["content"][0]["text"].as_str().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(text).unwrap(),
            result["structuredContent"]
        );
        result["structuredContent"].clone()
    }

    /// Calls a tool that must be refused with `code`; REST's error body it answers.
    async fn refused(&self, tool: &str, arguments: Value, code: &str) -> Value {
        let result = self.try_call(tool, arguments).await;
        assert_eq!(result["isError"], true, "{tool}: {result}");
        let error = &result["structuredContent"]["error"];
        assert_eq!(error["code"], code, "{tool}: {result}");
        assert!(error["message"].is_string(), "{tool}: {result}");
        error.clone()
    }

    async fn try_call(&self, tool: &str, arguments: Value) -> Value {
        self.rpc("tools/call", json!({"name": tool, "arguments": arguments}))
            .await
    }
}

/// A new API token of `user` with `scopes`, stored as `POST /tokens` stores one (which only
/// owners may call: this makes tokens of members and viewers too).
async fn token_of(app: &TestApp, user: &UserClient, scopes: &str) -> String {
    let token = secret::new_api_token();
    store::insert_token(
        &app.db,
        NewApiToken {
            tenant_id: user.tenant_id,
            user_id: user.user_id,
            name: "mcp",
            token_hash: &secret::digest(&token),
            prefix: &token[..8],
            scopes,
            created_at: chrono::Utc::now().naive_utc(),
        },
    )
    .await
    .unwrap();
    token
}

/// A campaign's status as the REST API shows it.
async fn rest_status(user: &UserClient, campaign: i64) -> Value {
    let campaign: Value = user
        .get(&format!("/api/v1/campaigns/{campaign}"))
        .await
        .json()
        .await
        .unwrap();
    campaign["status"].clone()
}

fn delivered(app: &TestApp) -> u64 {
    app.state.fleet.sim.clone().unwrap().stats().delivered
}

async fn chat_tools_send_through_the_simulator_within_the_callers_reach(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let device = app.paired_device(&owner, "Sales").await;
    let mcp = Mcp::connect(&app, &token_of(&app, &owner, "read,write").await).await;

    // Every tool, each with an object schema and a description.
    let listed = mcp.rpc("tools/list", json!({})).await;
    let tools = listed["tools"].as_array().unwrap();
    let names: BTreeSet<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, TOOLS.into_iter().collect());
    for tool in tools {
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
        assert!(tool["description"].as_str().unwrap().len() > 40, "{tool}");
    }
    let send = tools.iter().find(|t| t["name"] == "send_message").unwrap();
    let required = send["inputSchema"]["required"].as_array().unwrap();
    assert!(required.contains(&json!("device_id")) && required.contains(&json!("to")));

    let page = mcp.call("list_devices", json!({})).await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["id"], device);
    assert_eq!(page["items"][0]["status"], "online");

    // A text through the simulator: delivered to the recipient, then in the chat mirror.
    let sent = mcp
        .call(
            "send_message",
            json!({"device_id": device, "to": "+60 19-876 5432", "text": "Hello from MCP"}),
        )
        .await;
    let jid = "60198765432@s.whatsapp.net";
    assert_eq!(sent["to"], jid);
    let id = sent["id"].as_str().unwrap().to_string();
    let sim = app.state.fleet.sim.clone().unwrap();
    assert_eq!(sim.send_attempts(&id), 1, "the recipient got {id}");
    let chats = wait_until(
        "the chat to show the message",
        Duration::from_secs(10),
        || {
            let mcp = &mcp;
            async move {
                let listed = mcp.call("list_chats", json!({"device_id": device})).await;
                let chats = listed["chats"].as_array()?.clone();
                chats
                    .iter()
                    .any(|c| c["jid"] == jid && c["last_message"] == "Hello from MCP")
                    .then_some(chats)
            }
        },
    )
    .await;
    assert_eq!(chats.len(), 1);
    let messages = mcp
        .call("read_messages", json!({"device_id": device, "chat": jid}))
        .await;
    assert_eq!(messages["items"][0]["id"], id.as_str());
    assert_eq!(messages["items"][0]["text"], "Hello from MCP");
    assert_eq!(messages["items"][0]["from_me"], true);

    // A picture as base64: checked, re-encoded and sent like a REST upload.
    let picture = png(64, 48);
    let media = json!({"data": base64_of(&picture), "mime": "image/png"});
    let sent = mcp
        .call(
            "send_message",
            json!({"device_id": device, "to": jid, "text": "A picture", "media": media}),
        )
        .await;
    assert_eq!(sim.send_attempts(sent["id"].as_str().unwrap()), 1);
    let not_a_picture = json!({"data": base64_of(b"plain text"), "mime": "image/png"});
    mcp.refused(
        "send_message",
        json!({"device_id": device, "to": jid, "media": not_a_picture}),
        "invalid_image",
    )
    .await;

    // Refusals carry REST's codes and messages.
    mcp.refused(
        "send_message",
        json!({"device_id": device, "to": "123", "text": "x"}),
        "invalid_recipient",
    )
    .await;
    mcp.refused(
        "send_message",
        json!({"device_id": device, "text": "x"}),
        "invalid_json",
    )
    .await;
    mcp.refused(
        "read_messages",
        json!({"device_id": device, "chat": "60100000000@s.whatsapp.net"}),
        "not_found",
    )
    .await;

    // Another tenant's token: the same tools, none of the first tenant's objects.
    let other = app.new_tenant("Other").await;
    let outsider = Mcp::connect(&app, &token_of(&app, &other, "read,write").await).await;
    assert_eq!(
        outsider.tool_names().await,
        TOOLS.iter().map(|t| t.to_string()).collect()
    );
    let page = outsider.call("list_devices", json!({})).await;
    assert_eq!(page["total"], 0);
    assert_eq!(page["items"], json!([]));
    let before = delivered(&app);
    for (tool, arguments) in [
        ("list_chats", json!({"device_id": device})),
        ("read_messages", json!({"device_id": device, "chat": jid})),
        (
            "send_message",
            json!({"device_id": device, "to": jid, "text": "Not yours"}),
        ),
    ] {
        outsider.refused(tool, arguments, "not_found").await;
    }
    assert_eq!(delivered(&app), before, "nothing was sent for the outsider");

    // A viewer reads but cannot send; neither can a read-only token of the owner.
    let viewer = app.create_user(owner.tenant_id, "viewer").await;
    let viewing = Mcp::connect(&app, &token_of(&app, &viewer, "read,write").await).await;
    assert_eq!(viewing.call("list_devices", json!({})).await["total"], 1);
    let reading = Mcp::connect(&app, &token_of(&app, &owner, "read").await).await;
    for mcp in [&viewing, &reading] {
        mcp.refused(
            "send_message",
            json!({"device_id": device, "to": jid, "text": "Not allowed"}),
            "forbidden",
        )
        .await;
    }
    assert_eq!(delivered(&app), before, "nothing was sent for the viewer");

    // A member sees only the devices assigned to them.
    let member = app.create_user(owner.tenant_id, "member").await;
    let membering = Mcp::connect(&app, &token_of(&app, &member, "read,write").await).await;
    assert_eq!(membering.call("list_devices", json!({})).await["total"], 0);
    membering
        .refused(
            "send_message",
            json!({"device_id": device, "to": jid, "text": "Not assigned"}),
            "not_found",
        )
        .await;
    let assigned = owner
        .send_json(
            reqwest::Method::PUT,
            &format!("/api/v1/users/{}/devices", member.user_id),
            &json!({"device_ids": [device]}),
        )
        .await;
    assert_eq!(assigned.status(), 200);
    assert_eq!(membering.call("list_devices", json!({})).await["total"], 1);
    let sent = membering
        .call(
            "send_message",
            json!({"device_id": device, "to": jid, "text": "Now assigned"}),
        )
        .await;
    assert_eq!(sim.send_attempts(sent["id"].as_str().unwrap()), 1);
}

async fn campaign_and_lead_tools_act_as_the_rest_api_does(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    app.paired_device(&owner, "Sales").await;
    let mcp = Mcp::connect(&app, &token_of(&app, &owner, "read,write").await).await;
    let list: Value = owner
        .post("/api/v1/lead-lists", &json!({"name": "Expo"}))
        .await
        .json()
        .await
        .unwrap();
    let list = list["id"].as_i64().unwrap();

    // Leads: added through the tool, found by name and tag, a repeated phone refused.
    let lead = mcp
        .call(
            "create_lead",
            json!({"list_id": list, "phone": "+60 12-345 0001", "name": "Aisha", "tags": ["VIP"]}),
        )
        .await;
    assert_eq!(lead["phone"], "60123450001");
    assert_eq!(lead["tags"], json!(["vip"]));
    mcp.call(
        "create_lead",
        json!({"list_id": list, "phone": "60123450002", "name": "Badrul"}),
    )
    .await;
    let error = mcp
        .refused(
            "create_lead",
            json!({"list_id": list, "phone": "60123450001"}),
            "duplicate_phone",
        )
        .await;
    assert_eq!(error["message"], "this phone is already in the list");
    let found = mcp.call("find_leads", json!({"q": "Aisha"})).await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    assert_eq!(found["items"][0]["id"], lead["id"]);
    let found = mcp.call("find_leads", json!({"tag": "vip"})).await;
    assert_eq!(found["items"][0]["name"], "Aisha");
    // The REST API sees what the tool wrote.
    let rest: Value = owner.get("/api/v1/leads").await.json().await.unwrap();
    assert_eq!(rest["items"].as_array().unwrap().len(), 2);

    // Campaigns: listed, started, paused and resumed, with progress.
    let created: Value = owner
        .post(
            "/api/v1/campaigns",
            &json!({"name": "Launch", "message": "Hi {name}", "target": {"list_ids": [list]}}),
        )
        .await
        .json()
        .await
        .unwrap();
    let campaign = created["id"].as_i64().unwrap();
    let listed = mcp.call("list_campaigns", json!({})).await;
    assert_eq!(listed["campaigns"][0]["id"], campaign);
    assert_eq!(listed["campaigns"][0]["status"], "draft");
    let started = mcp
        .call("start_campaign", json!({"campaign_id": campaign}))
        .await;
    assert_eq!(started["messages"], 2);
    assert_eq!(started["campaign"]["status"], "running");
    let progress = mcp
        .call("campaign_progress", json!({"campaign_id": campaign}))
        .await;
    assert_eq!(progress["campaign_id"], campaign);
    assert_eq!(progress["total"], 2);
    let paused = mcp
        .call("pause_campaign", json!({"campaign_id": campaign}))
        .await;
    assert_eq!(paused["status"], "paused");
    let again = json!({"campaign_id": campaign});
    mcp.refused("pause_campaign", again, "wrong_state").await;
    assert_eq!(rest_status(&owner, campaign).await, "paused");
    let resumed = mcp
        .call("resume_campaign", json!({"campaign_id": campaign}))
        .await;
    assert_eq!(resumed["status"], "running");

    // Another tenant sees none of it and changes none of it.
    let other = app.new_tenant("Other").await;
    let outsider = Mcp::connect(&app, &token_of(&app, &other, "read,write").await).await;
    assert_eq!(
        outsider.call("list_campaigns", json!({})).await["campaigns"],
        json!([])
    );
    assert_eq!(
        outsider.call("find_leads", json!({"q": "Aisha"})).await["items"],
        json!([])
    );
    let this_campaign = json!({"campaign_id": campaign});
    for (tool, arguments) in [
        ("campaign_progress", &this_campaign),
        ("start_campaign", &this_campaign),
        ("pause_campaign", &this_campaign),
        ("resume_campaign", &this_campaign),
        (
            "create_lead",
            &json!({"list_id": list, "phone": "60123450003"}),
        ),
    ] {
        outsider.refused(tool, arguments.clone(), "not_found").await;
    }
    assert_eq!(
        rest_status(&owner, campaign).await,
        "running",
        "the outsider's pause did nothing"
    );

    // Writes need the write scope and a member's own campaign, as over REST.
    let reading = Mcp::connect(&app, &token_of(&app, &owner, "read").await).await;
    let member = app.create_user(owner.tenant_id, "member").await;
    let membering = Mcp::connect(&app, &token_of(&app, &member, "read,write").await).await;
    let lead = json!({"list_id": list, "phone": "60123450004"});
    for (mcp, tool, arguments) in [
        (&reading, "pause_campaign", &this_campaign),
        (&reading, "create_lead", &lead),
        // Not the member's campaign.
        (&membering, "pause_campaign", &this_campaign),
    ] {
        mcp.refused(tool, arguments.clone(), "forbidden").await;
    }
    assert_eq!(
        reading
            .call("campaign_progress", json!({"campaign_id": campaign}))
            .await["status"],
        "running"
    );
}

async fn requests_without_an_api_token_are_refused(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": PROTOCOL, "capabilities": {},
                   "clientInfo": {"name": "anonymous", "version": "1"}}
    });
    let anonymous = crate::helpers::new_client();
    let requests = [
        ("without a token", anonymous.post(app.url("/mcp"))),
        (
            "with a revoked or made-up token",
            anonymous
                .post(app.url("/mcp"))
                .bearer_auth("wf_made_up_token"),
        ),
        (
            "with the owner's session cookie",
            owner.request(reqwest::Method::POST, "/mcp"),
        ),
    ];
    for (how, request) in requests {
        let response = request
            .header("accept", "application/json, text/event-stream")
            .json(&initialize)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{how}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthenticated", "{how}: {body}");
    }
    // With a token, the same request is answered.
    let token = token_of(&app, &owner, "read").await;
    let response = anonymous
        .post(app.url("/mcp"))
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Stateless: no session to resume, no stream to open.
    assert!(response.headers().get("mcp-session-id").is_none());
    let stream = anonymous
        .get(app.url("/mcp"))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 405);
}

/// A `width` × `height` PNG.
fn png(width: u32, height: u32) -> Vec<u8> {
    let picture = image::ImageBuffer::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(picture)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

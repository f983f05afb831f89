//! Bounded resources for input outsiders control: page numbers whose offset would overflow,
//! and message templates nested deeper than the parser allows (both are a 4xx, never a panic or
//! a stack overflow). The image and CSV bounds are tested with their routes (`chats.rs`,
//! `leads.rs`).

use serde_json::{json, Value};

use crate::helpers::TestApp;

crate::both_backends!(
    huge_page_numbers_are_a_400,
    deeply_nested_templates_are_refused,
    nul_characters_in_text_are_refused_or_stored_never_a_server_error,
);

async fn huge_page_numbers_are_a_400(app: TestApp) {
    let owner = app.new_tenant("Pages").await;
    for query in [
        format!("page={}", i64::MAX),
        format!("page={}&per_page=500", i64::MAX / 100),
    ] {
        let response = owner.get(&format!("/api/v1/devices?{query}")).await;
        assert_eq!(response.status(), 400, "{query}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_query", "{query}");
    }
    let last = i64::MAX / 500 + 1;
    let page: Value = owner
        .get(&format!("/api/v1/devices?page={last}&per_page=500"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"], json!([]));
    assert_eq!(page["page"], last);
}

async fn deeply_nested_templates_are_refused(app: TestApp) {
    let owner = app.new_tenant("Nesting").await;
    let nested = |depth: usize| format!("{}x{}", "{a|".repeat(depth), "}".repeat(depth));
    for (message, needle) in [
        (nested(9), "nests groups more than 8 deep"),
        (nested(1_000), "nests groups more than 8 deep"),
        ("{".repeat(4_000), "nests groups more than 8 deep"),
    ] {
        let body = json!({"name": "Deep", "message": message, "target": {"list_ids": [1]}});
        let response = owner.post("/api/v1/campaigns", &body).await;
        assert_eq!(response.status(), 422);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_campaign");
        let text = error["error"]["message"].as_str().unwrap();
        assert!(text.contains(needle), "{text}");
    }
    // Eight levels are fine (the list does not exist: the template passed).
    let response = owner
        .post(
            "/api/v1/campaigns",
            &json!({"name": "Deep", "message": nested(8), "target": {"list_ids": [999_999]}}),
        )
        .await;
    let error: Value = response.json().await.unwrap();
    assert!(!error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nests"));
}

/// PostgreSQL stores no NUL character in text; SQLite does. Either way a client sending one
/// (JSON `\u0000`, `%00` in a query) gets a clear answer, never a 500 (found by schemathesis).
async fn nul_characters_in_text_are_refused_or_stored_never_a_server_error(app: TestApp) {
    let owner = app.new_tenant("Acme").await;
    let created = owner
        .post("/api/v1/lead-lists", &json!({"name": "Expo\u{0}2026"}))
        .await;
    let status = created.status().as_u16();
    let body: Value = created.json().await.unwrap();
    match status {
        201 => assert_eq!(body["name"], "Expo\u{0}2026", "stored as sent"),
        400 => assert_eq!(body["error"]["code"], "invalid_text", "{body}"),
        other => panic!("{other}: {body}"),
    }
    let search = owner.get("/api/v1/leads?q=a%00b").await;
    let status = search.status().as_u16();
    let body: Value = search.json().await.unwrap();
    assert!(status == 200 || status == 400, "{status}: {body}");
    if status == 400 {
        assert_eq!(body["error"]["code"], "invalid_text", "{body}");
    }
}

//! What keeps lead pages fast at a million leads stays true on both backends: a list's lead
//! count (kept on the list by triggers, not counted per page) follows creates, imports, updates
//! of known phones and deletes, and lead search (a trigram index) finds a renamed lead by its
//! new name only, never a deleted one, by any part of its phone, and short terms still work.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{TestApp, UserClient};

crate::both_backends!(
    list_counts_follow_every_change,
    search_follows_renames_and_deletes,
);

async fn ok_json(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    assert_eq!(got, status, "{body}");
    body
}

async fn new_list(user: &UserClient, name: &str) -> i64 {
    let list = ok_json(
        user.post("/api/v1/lead-lists", &json!({"name": name}))
            .await,
        201,
    )
    .await;
    list["id"].as_i64().unwrap()
}

async fn new_lead(user: &UserClient, list: i64, name: &str, phone: &str) -> i64 {
    let lead = ok_json(
        user.post(
            "/api/v1/leads",
            &json!({"list_id": list, "name": name, "phone": phone}),
        )
        .await,
        201,
    )
    .await;
    lead["id"].as_i64().unwrap()
}

async fn delete_lead(user: &UserClient, id: i64) {
    let deleted = user
        .request(Method::DELETE, &format!("/api/v1/leads/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
}

async fn import(user: &UserClient, list: i64, csv: &str) -> Value {
    let response = user
        .request(Method::POST, &format!("/api/v1/lead-lists/{list}/import"))
        .header("content-type", "text/csv")
        .body(csv.to_string())
        .send()
        .await
        .unwrap();
    ok_json(response, 200).await
}

/// The lead counts of the tenant's lists, as the lists page and one list show them.
async fn counts(user: &UserClient, lists: &[i64]) -> Vec<i64> {
    let all = ok_json(user.get("/api/v1/lead-lists").await, 200).await;
    let mut found = Vec::new();
    for list in lists {
        let one = ok_json(user.get(&format!("/api/v1/lead-lists/{list}")).await, 200).await;
        let on_page = all
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["id"] == *list)
            .map(|l| l["lead_count"].as_i64().unwrap());
        assert_eq!(on_page, one["lead_count"].as_i64(), "list {list}");
        found.push(on_page.unwrap());
    }
    found
}

async fn list_counts_follow_every_change(app: TestApp) {
    let owner = app.new_tenant("Counts").await;
    let (a, b) = (new_list(&owner, "A").await, new_list(&owner, "B").await);
    assert_eq!(counts(&owner, &[a, b]).await, [0, 0]);
    let ali = new_lead(&owner, a, "Ali", "0123456701").await;
    new_lead(&owner, b, "Siti", "0123456702").await;
    assert_eq!(counts(&owner, &[a, b]).await, [1, 1]);

    // Three new phones and one the list already has (an update, not a new lead).
    let csv =
        "name,phone\nAli Again,0123456701\nMuthu,0123456703\nAh Kow,0123456704\nLim,0123456705\n";
    let report = import(&owner, a, csv).await;
    assert_eq!(report["imported"], 3, "{report}");
    assert_eq!(counts(&owner, &[a, b]).await, [4, 1]);

    delete_lead(&owner, ali).await;
    assert_eq!(counts(&owner, &[a, b]).await, [3, 1]);

    // Another tenant's leads never count in this tenant's lists.
    let other = app.new_tenant("Elsewhere").await;
    let theirs = new_list(&other, "A").await;
    new_lead(&other, theirs, "Zed", "0123456709").await;
    assert_eq!(counts(&owner, &[a, b]).await, [3, 1]);
    assert_eq!(counts(&other, &[theirs]).await, [1]);
}

async fn search_follows_renames_and_deletes(app: TestApp) {
    let owner = app.new_tenant("Search").await;
    let list = new_list(&owner, "Leads").await;
    let ali = new_lead(&owner, list, "Ali Baba", "0123456701").await;
    let siti = new_lead(&owner, list, "Siti Nurhaliza", "0198765432").await;
    let found = |query: &'static str| {
        let owner = &owner;
        async move {
            let page = ok_json(owner.get(&format!("/api/v1/leads?q={query}")).await, 200).await;
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["id"].as_i64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(found("BABA").await, [ali], "any case");
    assert_eq!(found("8765").await, [siti], "a part of the phone");
    assert_eq!(
        found("li").await,
        [ali, siti],
        "a term shorter than a trigram"
    );
    assert_eq!(found("i%20B").await, [ali], "a term across words");
    assert!(
        found("Ali%22").await.is_empty(),
        "a quote is a character, not syntax"
    );

    let renamed = owner
        .send_json(
            Method::PATCH,
            &format!("/api/v1/leads/{ali}"),
            &json!({"name": "Alibaba Group"}),
        )
        .await;
    ok_json(renamed, 200).await;
    assert_eq!(found("group").await, [ali], "the new name");
    assert!(found("ali%20baba").await.is_empty(), "the old name is gone");

    delete_lead(&owner, siti).await;
    assert!(found("nurhaliza").await.is_empty());
    assert!(found("8765").await.is_empty());

    // Another tenant's lead with the same name is not found here.
    let other = app.new_tenant("Elsewhere").await;
    let theirs = new_list(&other, "Leads").await;
    new_lead(&other, theirs, "Alibaba Group", "0123456709").await;
    assert_eq!(found("group").await, [ali]);
}

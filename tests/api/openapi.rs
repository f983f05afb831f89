//! The OpenAPI document covers every route under /api/v1, describes each tag and carries
//! request examples that parse.
//!
//! Routes are registered through utoipa-actix-web, which refuses (at compile time) a handler
//! without `#[utoipa::path]`. These tests close the remaining gaps: a route macro in the source
//! without an OpenAPI annotation, a route registered beside utoipa, or a documented path that
//! does not route.

use std::path::Path;

use serde_json::Value;

use crate::helpers::{rust_files, spawn_app, Backend};

const ROUTE_MACROS: [&str; 6] = [
    "#[get(",
    "#[post(",
    "#[put(",
    "#[patch(",
    "#[delete(",
    "#[route(",
];

/// Every handler with an actix route macro outside the dashboard assets carries
/// `#[utoipa::path]`, and nothing registers routes beside utoipa except the known few.
#[test]
fn every_route_handler_is_documented() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut undocumented = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let is_assets = file.ends_with("web/assets.rs");
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            if ROUTE_MACROS.iter().any(|m| trimmed.starts_with(m)) && !is_assets {
                let window = &lines[i.saturating_sub(12)..i];
                if !window.iter().any(|l| l.contains("#[utoipa::path")) {
                    undocumented.push(format!("{}:{}", file.display(), i + 1));
                }
            }
        }
        if text.contains("web::resource(\"/api/v1") {
            let allowed = text.matches("web::resource(\"/api/v1").count()
                == text
                    .matches("web::resource(\"/api/v1/openapi.json\")")
                    .count();
            assert!(
                allowed,
                "{} registers an /api/v1 route beside utoipa",
                file.display()
            );
        }
    }
    assert!(
        undocumented.is_empty(),
        "routes without #[utoipa::path]: {undocumented:?}"
    );
}

/// The served document is valid, lists the ops endpoints, and every documented path routes.
#[actix_web::test]
async fn documented_paths_exist() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let response = app.get("/api/v1/openapi.json").await;
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for required in ["/healthz", "/readyz", "/metrics"] {
        assert!(
            paths.contains_key(required),
            "{required} missing from {paths:?}"
        );
    }
    for (path, operations) in paths {
        // Fill path parameters with an id that exists nowhere: the route must still match.
        let concrete: String = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "999999" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for method in operations.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = app
                .client
                .request(method.clone(), app.url(&concrete))
                .send()
                .await
                .unwrap();
            if response.status() == 404 {
                let body: Value = response.json().await.unwrap_or_default();
                assert_ne!(
                    body["error"]["message"], "route not found",
                    "{method} {path} is documented but does not route"
                );
            }
        }
    }
}

/// Collects every `$ref` of a JSON value.
fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                out.push(target.clone());
            }
            map.values().for_each(|v| references(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

/// Every `$ref` resolves (an enum used only as a path parameter once pointed nowhere, and
/// schema-driven clients refused the whole operation).
#[actix_web::test]
async fn every_reference_resolves() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    let mut refs = Vec::new();
    references(&doc, &mut refs);
    assert!(!refs.is_empty());
    for target in refs {
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {target}"));
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{target} does not resolve"
        );
    }
}

/// Every operation's tag is described in the document's `tags` (the reference groups operations
/// under these headings), and every described tag has operations.
#[actix_web::test]
async fn every_tag_is_described() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    let described: Vec<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tag| {
            let name = tag["name"].as_str().unwrap();
            let text = tag["description"].as_str().unwrap_or_default();
            assert!(!text.is_empty(), "tag {name} has no description");
            name
        })
        .collect();
    let mut used = std::collections::BTreeSet::new();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let tags = operation["tags"].as_array().unwrap();
            assert!(!tags.is_empty(), "{method} {path} has no tag");
            for tag in tags {
                let tag = tag.as_str().unwrap();
                assert!(
                    described.contains(&tag),
                    "{method} {path}: tag {tag} is not described in ApiDoc"
                );
                used.insert(tag);
            }
        }
    }
    for tag in described {
        assert!(used.contains(tag), "tag {tag} is described but unused");
    }
}

/// The request examples of the most used operations parse as the request types (which refuse
/// unknown fields), so a client copying one, or "Try" in the reference, sends a valid body.
#[actix_web::test]
async fn request_examples_fit_their_types() {
    use wafleet::web::routes::{auth, campaigns, chats, tokens};

    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    // Named `examples` (RapiDoc 9.3.8, the reference's viewer, ignores an object `example`).
    let example = |path: &str| {
        let examples = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]
            ["examples"]
            .as_object()
            .unwrap_or_else(|| panic!("POST {path} has no JSON examples"));
        assert_eq!(examples.len(), 1, "POST {path}: {examples:?}");
        let value = examples.values().next().unwrap()["value"].clone();
        assert!(value.is_object(), "POST {path}: {value}");
        value
    };
    let parse = |path: &str, result: Result<(), serde_json::Error>| {
        result.unwrap_or_else(|e| panic!("the example of POST {path} does not parse: {e}"));
    };
    let path = "/api/v1/auth/login";
    parse(
        path,
        serde_json::from_value::<auth::LoginRequest>(example(path)).map(drop),
    );
    let path = "/api/v1/devices/{id}/messages";
    parse(
        path,
        serde_json::from_value::<chats::SendTextRequest>(example(path)).map(drop),
    );
    let path = "/api/v1/campaigns";
    parse(
        path,
        serde_json::from_value::<campaigns::CampaignRequest>(example(path)).map(drop),
    );
    let path = "/api/v1/leads";
    parse(
        path,
        serde_json::from_value::<wafleet::web::actions::leads::CreateLeadRequest>(example(path))
            .map(drop),
    );
    let path = "/api/v1/tokens";
    parse(
        path,
        serde_json::from_value::<tokens::CreateTokenRequest>(example(path)).map(drop),
    );
}

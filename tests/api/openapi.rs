//! The OpenAPI document covers every route under /api/v1.
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

//! Lead lists, leads, CSV import, opt-outs and tenant broadcast settings on both backends:
//! CRUD and tenant isolation, search, imports with bad lines (line numbers and reasons),
//! dedup, a 100,000-row import (rows/s printed), keyword opt-outs from inbound messages, and
//! `IMPORT_PROGRESS` on `lead-lists/<id>`.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use wafleet::broadcast::leads::import::{import_csv, ImportError, BATCH_ROWS};
use wafleet::broadcast::leads::opt_out;

use crate::helpers::{wait_until, TestApp, UserClient};
use crate::ws::{connect, next_json, subscribe, token_for, WsAuth};

crate::both_backends!(
    lists_and_leads_crud_and_isolation,
    search_filters_and_keyset_pages,
    import_reports_bad_lines_and_updates_known_phones,
    import_of_100k_rows,
    import_dedupes_across_batches_and_cuts_long_cells,
    a_broken_upload_keeps_the_batches_written_before_it,
    an_import_into_a_deleted_list_stops_reading,
    opt_outs_add_list_delete,
    inbound_keyword_opts_the_sender_out,
    broadcast_settings_are_validated,
);

async fn create_list(user: &UserClient, name: &str) -> i64 {
    let response = user
        .post("/api/v1/lead-lists", &json!({"name": name}))
        .await;
    assert_eq!(response.status(), 201);
    let list: Value = response.json().await.unwrap();
    list["id"].as_i64().unwrap()
}

async fn import(user: &UserClient, list: i64, csv: String) -> Value {
    let response = user
        .request(Method::POST, &format!("/api/v1/lead-lists/{list}/import"))
        .header("content-type", "text/csv")
        .timeout(Duration::from_secs(120))
        .body(csv)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// DELETE `path` as `user`; the status.
async fn delete(user: &UserClient, path: &str) -> u16 {
    let response = user.request(Method::DELETE, path).send().await.unwrap();
    response.status().as_u16()
}

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let got = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    assert_eq!(got, status, "{body}");
    body
}

async fn lists_and_leads_crud_and_isolation(app: TestApp) {
    let owner = app.new_tenant("Leads").await;
    let list = create_list(&owner, "Customers").await;
    let again = owner
        .post("/api/v1/lead-lists", &json!({"name": "Customers"}))
        .await;
    assert_eq!(json_of(again, 409).await["error"]["code"], "duplicate_name");

    let lead = json_of(
        owner
            .post(
                "/api/v1/leads",
                &json!({"list_id": list, "phone": "012-345 6789", "name": " Ali ",
                        "tags": ["VIP", "kl"], "fields": {"city": "KL"}}),
            )
            .await,
        201,
    )
    .await;
    assert_eq!(lead["phone"], "60123456789");
    assert_eq!(lead["name"], "Ali");
    assert_eq!(lead["tags"], json!(["vip", "kl"]));
    assert_eq!(lead["status"], "prospect");
    assert_eq!(lead["fields"]["city"], "KL");
    let id = lead["id"].as_i64().unwrap();

    let duplicate = owner
        .post(
            "/api/v1/leads",
            &json!({"list_id": list, "phone": "+60 12-345 6789"}),
        )
        .await;
    assert_eq!(
        json_of(duplicate, 409).await["error"]["code"],
        "duplicate_phone"
    );
    let bad = owner
        .post(
            "/api/v1/leads",
            &json!({"list_id": list, "phone": "call me"}),
        )
        .await;
    assert_eq!(json_of(bad, 422).await["error"]["code"], "invalid_phone");

    let patched = json_of(
        owner
            .send_json(
                Method::PATCH,
                &format!("/api/v1/leads/{id}"),
                &json!({"status": "Customer", "niche": "Food", "tags": []}),
            )
            .await,
        200,
    )
    .await;
    assert_eq!(patched["status"], "customer");
    assert_eq!(patched["niche"], "Food");
    assert_eq!(patched["tags"], json!([]));
    assert_eq!(patched["name"], "Ali");

    let shown = json_of(owner.get(&format!("/api/v1/lead-lists/{list}")).await, 200).await;
    assert_eq!(shown["lead_count"], 1);
    let all = json_of(owner.get("/api/v1/lead-lists").await, 200).await;
    assert_eq!(all[0]["lead_count"], 1);

    // Another tenant sees none of it.
    let other = app.new_tenant("Other").await;
    for path in [
        format!("/api/v1/lead-lists/{list}"),
        format!("/api/v1/leads/{id}"),
    ] {
        assert_eq!(other.get(&path).await.status(), 404, "{path}");
        assert_eq!(delete(&other, &path).await, 404, "{path}");
    }
    let foreign = other
        .post(
            "/api/v1/leads",
            &json!({"list_id": list, "phone": "0123456788"}),
        )
        .await;
    assert_eq!(foreign.status(), 404);
    let foreign_import = other
        .request(Method::POST, &format!("/api/v1/lead-lists/{list}/import"))
        .body("name,phone\nA,0123456788\n")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign_import.status(), 404);
    let theirs = json_of(other.get("/api/v1/leads").await, 200).await;
    assert_eq!(theirs["items"], json!([]));

    let renamed = owner
        .send_json(
            Method::PATCH,
            &format!("/api/v1/lead-lists/{list}"),
            &json!({"name": "VIPs"}),
        )
        .await;
    assert_eq!(json_of(renamed, 200).await["name"], "VIPs");
    assert_eq!(delete(&owner, &format!("/api/v1/leads/{id}")).await, 204);
    assert_eq!(
        owner.get(&format!("/api/v1/leads/{id}")).await.status(),
        404
    );
    assert_eq!(
        delete(&owner, &format!("/api/v1/lead-lists/{list}")).await,
        204
    );
    assert_eq!(
        owner
            .get(&format!("/api/v1/lead-lists/{list}"))
            .await
            .status(),
        404
    );
}

async fn search_filters_and_keyset_pages(app: TestApp) {
    let owner = app.new_tenant("Search").await;
    let a = create_list(&owner, "A").await;
    let b = create_list(&owner, "B").await;
    let csv = "name,phone,tags,status,niche\n\
               Ali Baba,0123456701,vip;kl,customer,Food\n\
               Siti,0123456702,kl,prospect,food\n\
               Ah Kow,0123456703,vip|penang,customer,Cars\n\
               Muthu,0123456704,,prospect,\n";
    assert_eq!(import(&owner, a, csv.into()).await["imported"], 4);
    let other = "name,phone,tags\nVip Elsewhere,0123456705,vip\n";
    assert_eq!(import(&owner, b, other.into()).await["imported"], 1);

    let phones = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["phone"].as_str().unwrap().to_string())
            .collect()
    };
    let search = |query: String| {
        let owner = &owner;
        async move { json_of(owner.get(&format!("/api/v1/leads?{query}")).await, 200).await }
    };
    let vip = search(format!("list_id={a}&tag=VIP")).await;
    assert_eq!(phones(&vip), ["60123456701", "60123456703"]);
    assert_eq!(phones(&search("tag=vip".into()).await).len(), 3);
    let customers = search(format!("list_id={a}&status=customer")).await;
    assert_eq!(phones(&customers), ["60123456701", "60123456703"]);
    assert_eq!(phones(&search("q=ali".into()).await), ["60123456701"]);
    assert_eq!(phones(&search("q=456704".into()).await), ["60123456704"]);
    assert_eq!(
        phones(&search("niche=FOOD".into()).await),
        ["60123456701", "60123456702"]
    );
    // A tag is matched whole: "kl" does not find "kl2", and LIKE wildcards are literal.
    assert!(phones(&search("tag=k%25".into()).await).is_empty());

    let mut seen = Vec::new();
    let mut cursor: Option<i64> = None;
    loop {
        let query = match cursor {
            Some(c) => format!("limit=2&cursor={c}"),
            None => "limit=2".to_string(),
        };
        let page = search(query).await;
        seen.extend(phones(&page));
        match page["next_cursor"].as_i64() {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 5);
    let bad = owner.get("/api/v1/leads?cursor=x").await;
    assert_eq!(bad.status(), 400);
}

async fn import_reports_bad_lines_and_updates_known_phones(app: TestApp) {
    let owner = app.new_tenant("Import").await;
    let list = create_list(&owner, "Import").await;
    let token = token_for(&owner, &["read"]).await;
    let mut ws = connect(&app, WsAuth::Bearer(&token)).await.unwrap();
    subscribe(&mut ws, &[&format!("lead-lists/{list}")]).await;

    let mut csv = b"Name,Phone,Tags,Status,City\r\n\
        Ali,0123456701,vip;kl,customer,KL\r\n\
        Bad Phone,12345,,,\r\n\
        \r\n\
        Short Row,0123456702\r\n\
        \"Multi\nLine\",0123456703,,,Ipoh\r\n\
        Again Ali,+60123456701,,,\r\n\
        No Phone,,,,\r\n"
        .to_vec();
    csv.extend_from_slice(b"Bad \xff UTF,0123456704,,,\r\nLast,0123456705,,,Penang");
    let response = owner
        .request(Method::POST, &format!("/api/v1/lead-lists/{list}/import"))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    let report = json_of(response, 200).await;
    assert_eq!(report["imported"], 3, "{report}");
    assert_eq!(report["duplicates"], 1);
    assert_eq!(report["updated"], 0);
    assert_eq!(report["failed"], 4);
    assert_eq!(report["rows"], 8);
    let errors: Vec<(i64, String)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line"].as_i64().unwrap(),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(errors[0].0, 3);
    assert!(errors[0].1.starts_with("bad phone"), "{errors:?}");
    assert_eq!(
        errors[1],
        (5, "wrong column count: expected 5, found 2".to_string())
    );
    assert_eq!(errors[2], (9, "missing phone".to_string()));
    assert_eq!(errors[3], (10, "invalid UTF-8 in column 1".to_string()));

    let progress = next_json(&mut ws, |v| v["event"] == "IMPORT_PROGRESS").await;
    assert_eq!(progress["topic"], format!("lead-lists/{list}"));
    assert_eq!(progress["data"]["list_id"], list);
    assert_eq!(progress["data"]["imported"], 3);
    assert_eq!(progress["data"]["failed"], 4);

    // A second file: known phones are updated with the non-empty values only.
    let csv = "phone,name,city,status\n0123456701,,Penang,\n0123456706,New,,\n";
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("leads.csv"),
    );
    let response = owner
        .request(Method::POST, &format!("/api/v1/lead-lists/{list}/import"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let report = json_of(response, 200).await;
    assert_eq!(
        (report["imported"].as_i64(), report["updated"].as_i64()),
        (Some(1), Some(1))
    );
    let ali = json_of(owner.get("/api/v1/leads?q=60123456701").await, 200).await;
    let ali = &ali["items"][0];
    assert_eq!(ali["name"], "Ali");
    assert_eq!(ali["status"], "customer");
    assert_eq!(ali["tags"], json!(["vip", "kl"]));
    assert_eq!(ali["fields"]["City"], "KL");
    assert_eq!(ali["fields"]["city"], "Penang");
    let multi = json_of(owner.get("/api/v1/leads?q=60123456703").await, 200).await;
    assert_eq!(multi["items"][0]["name"], "Multi\nLine");
    let shown = json_of(owner.get(&format!("/api/v1/lead-lists/{list}")).await, 200).await;
    assert_eq!(shown["lead_count"], 4);

    // Files that cannot be imported at all are 422 and write nothing.
    for body in ["", "name,city\nA,KL\n"] {
        let response = owner
            .request(Method::POST, &format!("/api/v1/lead-lists/{list}/import"))
            .header("content-type", "text/csv")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(json_of(response, 422).await["error"]["code"], "invalid_csv");
    }
    let form = reqwest::multipart::Form::new().text("other", "x");
    let response = owner
        .request(Method::POST, &format!("/api/v1/lead-lists/{list}/import"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

async fn import_of_100k_rows(app: TestApp) {
    const ROWS: usize = 100_000;
    let owner = app.new_tenant("Bulk").await;
    let list = create_list(&owner, "Bulk").await;
    let mut csv = String::with_capacity(ROWS * 48);
    csv.push_str("name,phone,niche,tags,status,source\n");
    let mut bad_lines = Vec::new();
    for i in 0..ROWS {
        let line = i + 2;
        if i % 20_000 == 7 {
            csv.push_str("Broken,12,,,,\n");
            bad_lines.push(line as i64);
        } else if i % 25_000 == 11 {
            csv.push_str("Short,0123\n");
            bad_lines.push(line as i64);
        } else {
            // 60 12 1xx xxxx: valid Malaysian mobile numbers, all distinct.
            let _ = writeln!(
                csv,
                "Lead {i},012{:07},retail,bulk;t{},prospect,csv",
                i,
                i % 7
            );
        }
    }
    let started = Instant::now();
    let report = import(&owner, list, csv).await;
    let seconds = started.elapsed().as_secs_f64();
    let failed = bad_lines.len() as i64;
    println!(
        "100k import ({}): {ROWS} rows in {seconds:.2} s = {:.0} rows/s",
        app.state.db.backend_name(),
        ROWS as f64 / seconds
    );
    assert_eq!(report["rows"], ROWS as i64);
    assert_eq!(report["failed"], failed);
    assert_eq!(report["imported"], ROWS as i64 - failed);
    assert_eq!(report["duplicates"], 0);
    let lines: Vec<i64> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, bad_lines);
    let shown = json_of(owner.get(&format!("/api/v1/lead-lists/{list}")).await, 200).await;
    assert_eq!(shown["lead_count"], ROWS as i64 - failed);
}

/// Phones repeated within a batch and across batches of one import ([`BATCH_ROWS`] each) count as
/// duplicates, the first row winning, whether the phone was new or already in the list; the
/// file's phones are recognised through the database, not a set held for the whole file. A
/// 60,000-character cell comes back cut to 64 characters in the error report.
async fn import_dedupes_across_batches_and_cuts_long_cells(app: TestApp) {
    let owner = app.new_tenant("Dedupe").await;
    let list = create_list(&owner, "Dedupe").await;
    let before = import(&owner, list, "name,phone\nKnown,0129999999\n".into()).await;
    assert_eq!(before["imported"], 1);

    let phone = |i: usize| format!("012{i:07}");
    let mut csv = String::from("name,phone,status\n");
    let mut rows = 0;
    let mut push = |csv: &mut String, name: &str, phone: &str, status: &str| {
        let _ = writeln!(csv, "{name},{phone},{status}");
        rows += 1;
    };
    push(&mut csv, "First A", &phone(1), "");
    push(&mut csv, "Updated Known", "0129999999", "");
    // Three batches: the repeats below fall in the same batch as the first occurrence, the
    // next batch and the last batch.
    let batch = BATCH_ROWS;
    let leads = 2 * batch + 100;
    for i in 2..leads {
        push(&mut csv, &format!("Lead {i}"), &phone(i), "");
        if i == batch + 50 {
            push(&mut csv, "Again", &phone(i), "");
        }
        if i == batch + 200 || i == 2 * batch + 50 {
            push(&mut csv, "Again A", &phone(1), "");
        }
        if i == batch + 400 {
            push(&mut csv, "Again Known", "0129999999", "");
        }
    }
    let long = "x".repeat(60_000);
    push(&mut csv, "Long status", &phone(leads + 1), &long);
    let report = import(&owner, list, csv).await;
    assert_eq!(report["rows"], rows as i64);
    assert_eq!(report["imported"], leads - 1, "{}", report["errors"]);
    assert_eq!(report["updated"], 1);
    assert_eq!(report["duplicates"], 4);
    assert_eq!(report["failed"], 1);
    let reason = report["errors"][0]["reason"].as_str().unwrap();
    assert_eq!(
        reason,
        format!(
            "bad status \"{}\"…: use 1–32 letters, digits, '_' or '-'",
            "x".repeat(64)
        )
    );

    let name_of = |phone: String| {
        let owner = &owner;
        async move {
            let found = json_of(owner.get(&format!("/api/v1/leads?q={phone}")).await, 200).await;
            found["items"][0]["name"].as_str().unwrap().to_string()
        }
    };
    assert_eq!(name_of(format!("6{}", phone(1))).await, "First A");
    let repeated = batch + 50;
    assert_eq!(
        name_of(format!("6{}", phone(repeated))).await,
        format!("Lead {repeated}")
    );
    assert_eq!(name_of("60129999999".into()).await, "Updated Known");
    let shown = json_of(owner.get(&format!("/api/v1/lead-lists/{list}")).await, 200).await;
    assert_eq!(shown["lead_count"], leads);

    // A later import of the same phones updates them: they were written by another import.
    let again = import(&owner, list, "name,phone\nA again,0120000001\n".into()).await;
    assert_eq!(
        (again["updated"].as_i64(), again["duplicates"].as_i64()),
        (Some(1), Some(0))
    );
}

/// A body of `rows` leads (phones 0120000000 on) after the header, one chunk a row, then
/// `tail` (an error, or nothing); counts the chunks the importer pulls.
fn upload(
    rows: usize,
    tail: Option<std::io::Error>,
    pulled: Arc<AtomicUsize>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let header = std::iter::once(Ok(b"name,phone\n".to_vec()));
    let body = (0..rows).map(|n| Ok(format!("Lead {n},012{n:07}\n").into_bytes()));
    let chunks = header.chain(body).chain(tail.map(Err));
    futures_util::stream::iter(chunks.inspect(move |_| {
        pulled.fetch_add(1, Ordering::SeqCst);
    }))
}

/// A body that breaks off keeps the whole batches written before the break, and the import
/// answers the body's error.
async fn a_broken_upload_keeps_the_batches_written_before_it(app: TestApp) {
    let owner = app.new_tenant("Broken").await;
    let list = create_list(&owner, "Broken").await;
    let country = wafleet::phone::country_code("MY").unwrap();
    let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset");
    let body = upload(2 * BATCH_ROWS + BATCH_ROWS / 2, Some(reset), Arc::default());
    let outcome = import_csv(&app.db, owner.tenant_id, list, country, body, |_| {}).await;
    let counts = outcome.as_ref().map(|r| (r.rows, r.imported, r.failed));
    assert!(
        matches!(&outcome, Err(ImportError::Body(e)) if e.contains("connection reset")),
        "{counts:?}"
    );
    let shown = json_of(owner.get(&format!("/api/v1/lead-lists/{list}")).await, 200).await;
    assert_eq!(shown["lead_count"], 2 * BATCH_ROWS);
}

/// A batch that cannot be written (the list was deleted) stops the import: the rest of the
/// upload is not read and parsed for nothing.
async fn an_import_into_a_deleted_list_stops_reading(app: TestApp) {
    let owner = app.new_tenant("Gone").await;
    let list = create_list(&owner, "Gone").await;
    assert_eq!(
        delete(&owner, &format!("/api/v1/lead-lists/{list}")).await,
        204
    );
    let country = wafleet::phone::country_code("MY").unwrap();
    let rows = 50 * BATCH_ROWS;
    let pulled = Arc::new(AtomicUsize::new(0));
    let body = upload(rows, None, pulled.clone());
    let outcome = import_csv(&app.db, owner.tenant_id, list, country, body, |_| {}).await;
    let counts = outcome.as_ref().map(|r| (r.rows, r.imported, r.failed));
    assert!(
        matches!(
            outcome,
            Err(ImportError::Db(wafleet::db::DbError::NotFound))
        ),
        "{counts:?}"
    );
    // The first batch failed: the upload was read no further than the header, that batch and
    // the batch parsed while it was being written.
    let read = pulled.load(Ordering::SeqCst);
    assert!(read <= 1 + 2 * BATCH_ROWS, "read {read} of {rows} rows");
}

async fn opt_outs_add_list_delete(app: TestApp) {
    let owner = app.new_tenant("Opt").await;
    let added = owner
        .post(
            "/api/v1/opt-outs",
            &json!({"phone": "012-345 6789", "reason": "asked by phone"}),
        )
        .await;
    let added = json_of(added, 201).await;
    assert_eq!(added["phone"], "60123456789");
    assert_eq!(added["source"], "manual");
    let again = owner
        .post("/api/v1/opt-outs", &json!({"phone": "+60123456789"}))
        .await;
    assert_eq!(json_of(again, 200).await["id"], added["id"]);
    let bad = owner
        .post("/api/v1/opt-outs", &json!({"phone": "nope"}))
        .await;
    assert_eq!(bad.status(), 422);
    owner
        .post("/api/v1/opt-outs", &json!({"phone": "0198765432"}))
        .await;

    let page = json_of(owner.get("/api/v1/opt-outs?q=6789").await, 200).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let page = json_of(owner.get("/api/v1/opt-outs?limit=1").await, 200).await;
    assert!(page["next_cursor"].is_i64());

    let phones = vec!["60123456789".to_string(), "60111111111".to_string()];
    let found = opt_out::opted_out(&app.db, owner.tenant_id, &phones)
        .await
        .unwrap();
    assert_eq!(found, HashSet::from(["60123456789".to_string()]));
    let other = app.new_tenant("Other").await;
    assert!(opt_out::opted_out(&app.db, other.tenant_id, &phones)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(delete(&other, "/api/v1/opt-outs/60123456789").await, 404);
    assert_eq!(delete(&owner, "/api/v1/opt-outs/0123456789").await, 204);
    assert_eq!(delete(&owner, "/api/v1/opt-outs/0123456789").await, 404);
}

async fn inbound_keyword_opts_the_sender_out(app: TestApp) {
    let admin = app.admin().await;
    let device = app.paired_device(&admin, "chat").await;
    let sim = app.state.fleet.sim.clone().unwrap();
    let tenant = admin.tenant_id;
    let is_out = |phone: &'static str| {
        let db = app.db.clone();
        async move {
            let found = opt_out::opted_out(&db, tenant, &[phone.to_string()])
                .await
                .unwrap();
            found.contains(phone).then_some(())
        }
    };

    // Not keywords: an ordinary sentence that contains one, and a long text.
    sim.deliver_inbound(device, "60198765431", "please stop the noise")
        .await
        .unwrap();
    sim.deliver_inbound(device, "60198765432", "  Stop ")
        .await
        .unwrap();
    wait_until(
        "the STOP sender on the opt-out list",
        Duration::from_secs(10),
        || is_out("60198765432"),
    )
    .await;
    let page = json_of(admin.get("/api/v1/opt-outs?q=60198765432").await, 200).await;
    assert_eq!(page["items"][0]["source"], "keyword");
    assert_eq!(page["items"][0]["reason"], "STOP");
    assert!(is_out("60198765431").await.is_none());

    // The tenant's own keywords apply once saved.
    let saved = admin
        .send_json(
            Method::PUT,
            "/api/v1/settings/broadcast",
            &json!({"opt_out_keywords": ["Tak Nak"]}),
        )
        .await;
    assert_eq!(saved.status(), 200);
    sim.deliver_inbound(device, "60198765433", "tak nak")
        .await
        .unwrap();
    wait_until(
        "the custom keyword sender on the list",
        Duration::from_secs(10),
        || is_out("60198765433"),
    )
    .await;
}

async fn broadcast_settings_are_validated(app: TestApp) {
    let owner = app.new_tenant("Settings").await;
    let shown = json_of(owner.get("/api/v1/settings/broadcast").await, 200).await;
    assert_eq!(shown["effective"]["default_country"], "MY");
    assert!(shown["effective"]["opt_out_keywords"]
        .as_array()
        .unwrap()
        .contains(&json!("STOP")));
    assert_eq!(shown["effective"]["time_zone"], "Asia/Kuala_Lumpur");
    assert!(shown["stored"].get("default_country").is_none());

    let put = |body: Value| {
        let owner = &owner;
        async move {
            owner
                .send_json(Method::PUT, "/api/v1/settings/broadcast", &body)
                .await
        }
    };
    for bad in [
        json!({"default_country": "XX"}),
        json!({"opt_out_keywords": [" "]}),
        json!({"opt_out_keywords": ["x".repeat(41)]}),
        json!({"pacing": {"min_delay_ms": 1}}),
    ] {
        let response = put(bad.clone()).await;
        assert_eq!(
            json_of(response, 422).await["error"]["code"],
            "invalid_settings",
            "{bad}"
        );
    }
    assert_eq!(put(json!({"colour": "red"})).await.status(), 400);

    let saved = json_of(
        put(json!({"default_country": "id", "opt_out_keywords": ["Berhenti"]})).await,
        200,
    )
    .await;
    assert_eq!(saved["effective"]["default_country"], "ID");
    assert_eq!(saved["effective"]["opt_out_keywords"], json!(["BERHENTI"]));
    let shown = json_of(owner.get("/api/v1/settings/broadcast").await, 200).await;
    assert_eq!(shown["stored"]["default_country"], "id");
    let actions = wafleet::audit::recent_actions(&app.db, owner.tenant_id, 5)
        .await
        .unwrap();
    assert!(actions.contains(&"settings.broadcast.update".to_string()));

    // National numbers now read as Indonesian.
    let list = create_list(&owner, "ID").await;
    let lead = owner
        .post(
            "/api/v1/leads",
            &json!({"list_id": list, "phone": "0812 3456 7890"}),
        )
        .await;
    assert_eq!(json_of(lead, 201).await["phone"], "6281234567890");

    let viewer = app.create_user(owner.tenant_id, "viewer").await;
    assert_eq!(viewer.get("/api/v1/settings/broadcast").await.status(), 403);
    let member = app.create_user(owner.tenant_id, "member").await;
    assert_eq!(member.get("/api/v1/settings/broadcast").await.status(), 200);
    let denied = member
        .send_json(Method::PUT, "/api/v1/settings/broadcast", &json!({}))
        .await;
    assert_eq!(denied.status(), 403);
}

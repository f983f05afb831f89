//! `wafleet bench scale`: the pages and jobs whose cost grows with the data, at fleet scale.
//!
//! Bulk SQL builds L leads in 100 lists (one list holds a tenth of them, the rest share the
//! others), N devices, one chat per lead on the devices in turn and ten messages per chat
//! (10·L messages). Then, with the same store calls the API makes: the lead lists with their
//! counts, a page of a list, lead search by name and by phone (a term matching one lead, the
//! worst case: nothing stops the scan early), a device's chat list and chat search; p50/p99 of
//! each, and the database's size.
//!
//! Then the daemon starts on that data (every device online at the simulator) and a campaign
//! over every lead starts: seconds to write its outbox, and the longest stall of the system
//! arbiter meanwhile (a probe that wakes every 5 ms measures how late it wakes); the cost of one
//! progress count of that campaign. While it sends (paced, real time), the big list is deleted
//! while a writer also inserts one chat message every 10 ms: seconds, the writer's longest wait
//! and failed writes. Then the lanes stop as on SIGTERM and every message the simulator accepted
//! must reach the chat mirror within 120 s (`mirror_drain_seconds`; `chat_messages_lost`, must be
//! 0).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use serde_json::{json, Value};

use super::report::{percentile, round};
use super::{number, numbers, RunningApp};
use crate::broadcast::campaign::messages::{StartCampaign, StopLanes};
use crate::broadcast::campaign::progress::progress;
use crate::broadcast::campaign::store as campaigns;
use crate::broadcast::leads::store::{self as leads, LeadFilter};
use crate::chat::store as chats;
use crate::cli::BenchArgs;
use crate::db::{Db, DbError};
use crate::db_run;

/// Timed calls per case.
const CALLS: usize = 30;
/// Lead lists built.
const LISTS: u32 = 100;
/// Messages per chat.
const MESSAGES_PER_CHAT: u32 = 10;
/// Rows a page shows (the API's default).
const PAGE: i64 = 50;
/// How often the writer beside the list deletion writes a chat message.
const WRITER_EVERY: Duration = Duration::from_millis(10);
/// How often the stall probe asks to be woken.
const PROBE_EVERY: Duration = Duration::from_millis(5);
/// Progress counts timed.
const PROGRESS_CALLS: usize = 5;
/// How long the chat mirror may take to show every accepted send once the lanes stopped.
const MIRROR_DRAIN_WAIT: Duration = Duration::from_secs(120);
/// How long the campaign may take to make its first sends before the big list is deleted.
const SENDS_BEFORE_DELETE_WAIT: Duration = Duration::from_secs(60);

/// Runs the scenario with `--leads` and `--devices`.
pub async fn run(args: &BenchArgs) -> anyhow::Result<Value> {
    let (leads, devices) = (args.leads, args.devices.max(1));
    super::with_database(args, |url| measure(url, leads, devices)).await
}

async fn measure(database_url: String, lead_count: u32, devices: u32) -> anyhow::Result<Value> {
    let settings = super::settings(
        &database_url,
        &[
            ("WAFLEET__SIM__AUTO_SCAN_AFTER_MS", "5"),
            ("WAFLEET__SIM__QR_ROTATE_MS", "0"),
            ("WAFLEET__SIM__REPLY_PROBABILITY", "0"),
        ],
    )?;
    let (db, admin) = super::prepare(&settings).await?;
    let tenant_id = admin.tenant_id.context("the admin account has no tenant")?;
    let started = Instant::now();
    seed(&db, tenant_id, lead_count, devices).await?;
    let seed_seconds = started.elapsed().as_secs_f64();
    let (lists, first_device) = ids(&db, tenant_id).await?;
    let (Some(&big_list), Some(&small_list)) = (lists.as_slice().first(), lists.as_slice().last())
    else {
        anyhow::bail!("no lists were built");
    };
    // A lead in the middle of the data: its name and phone are found only by a full search.
    let middle = lead_count / 2;
    let since = Utc::now().naive_utc() - chrono::Duration::days(30);

    let mut cases = serde_json::Map::new();
    cases.insert(
        "lead_lists".into(),
        timed(|| async {
            let lists = leads::list_lists(&db, tenant_id).await?;
            Ok(lists.len())
        })
        .await?,
    );
    let list_page = |list_id| LeadFilter {
        list_id: Some(list_id),
        ..LeadFilter::default()
    };
    let search = |term: String| LeadFilter {
        search: Some(term),
        ..LeadFilter::default()
    };
    for (name, filter) in [
        ("big_list_page", list_page(big_list)),
        ("small_list_page", list_page(small_list)),
        ("lead_search_name", search(format!("lead {middle} "))),
        (
            "lead_search_phone",
            search(phone_of(middle)[4..].to_string()),
        ),
    ] {
        cases.insert(
            name.into(),
            timed(|| async {
                // A list's page shows the list, with its count, above its leads.
                if let Some(list_id) = filter.list_id {
                    leads::get_list(&db, tenant_id, list_id).await?;
                }
                Ok(leads::search_leads(&db, tenant_id, &filter, PAGE)
                    .await?
                    .len())
            })
            .await?,
        );
    }
    cases.insert(
        "chat_list".into(),
        timed(|| async {
            Ok(
                chats::list_chats(&db, tenant_id, first_device, since, None, PAGE)
                    .await?
                    .len(),
            )
        })
        .await?,
    );
    cases.insert(
        "chat_search".into(),
        timed(|| async {
            let found =
                chats::list_chats(&db, tenant_id, first_device, since, Some("order 7"), PAGE)
                    .await?;
            Ok(found.len())
        })
        .await?,
    );

    let db_bytes = database_bytes(&db).await?;
    let backend = db.backend_name();
    let pacing = json!({"min_delay_ms": 5000, "max_delay_ms": 15000, "warmup_days": 0});
    let campaign_id = super::draft_campaign(&db, tenant_id, "scale", &lists, pacing).await?;
    drop(db);

    let app = RunningApp::start(settings).await?;
    super::boot::wait_all_online(&app, devices).await?;
    let db = app.state.db.clone();
    let stall = StallProbe::start();
    let started = Instant::now();
    let written = app
        .state
        .campaigns
        .send(StartCampaign { campaign_id })
        .await?
        .map_err(|e| anyhow::anyhow!("cannot start the campaign: {e}"))?;
    let start_seconds = started.elapsed().as_secs_f64();
    let longest_stall = stall.stop().await?;
    let campaign = campaigns::find_campaign(&db, campaign_id).await?;
    let mut counting = Vec::with_capacity(PROGRESS_CALLS);
    for _ in 0..PROGRESS_CALLS {
        let at = Instant::now();
        progress(&db, &campaign).await?;
        counting.push(at.elapsed().as_secs_f64() * 1000.0);
    }
    counting.sort_by(f64::total_cmp);
    // The delete runs while the campaign sends: wait for the first sends (after typing).
    let sim = app
        .state
        .fleet
        .sim
        .clone()
        .context("the simulator is needed")?;
    let sending_by = Instant::now() + SENDS_BEFORE_DELETE_WAIT;
    while sim.stats().delivered < u64::from(devices.min(100)) && Instant::now() < sending_by {
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let deletion = delete_beside_a_writer(&db, tenant_id, big_list, first_device).await?;
    // The lanes stop as on SIGTERM (a send handed to WhatsApp is recorded); then every send the
    // simulator accepted must reach the chat mirror.
    app.state.campaigns.send(StopLanes).await?;
    let accepted = sim.stats().delivered;
    let drain_started = Instant::now();
    let mut mirrored = campaign_messages_mirrored(&db, tenant_id).await?;
    while u64::try_from(mirrored).unwrap_or(0) < accepted
        && drain_started.elapsed() < MIRROR_DRAIN_WAIT
    {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        mirrored = campaign_messages_mirrored(&db, tenant_id).await?;
    }
    let mirror_drain_seconds = drain_started.elapsed().as_secs_f64();
    drop(db);
    app.stop().await?;
    Ok(json!({
        "params": {
            "leads": lead_count, "lists": LISTS, "devices": devices,
            "messages": u64::from(lead_count) * u64::from(MESSAGES_PER_CHAT),
            "db": backend, "calls_per_case": CALLS, "page": PAGE,
        },
        "seed_seconds": round(seed_seconds, 1),
        "db_bytes": db_bytes,
        "pages": cases,
        "campaign_start": {
            "outbox_rows": written,
            "seconds": round(start_seconds, 2),
            "longest_arbiter_stall_ms": round(longest_stall.as_secs_f64() * 1000.0, 1),
            "progress_count_p50_ms": percentile(&counting, 0.5).map(|v| round(v, 1)),
            "progress_count_max_ms": percentile(&counting, 1.0).map(|v| round(v, 1)),
        },
        "delete_big_list": deletion,
        "campaign_sends_accepted": accepted,
        "mirror_drain_seconds": round(mirror_drain_seconds, 2),
        "chat_messages_lost": i64::try_from(accepted).unwrap_or(i64::MAX) - mirrored,
    }))
}

/// The campaign's messages in the chat mirror (the seeded ones and the writer's left out).
async fn campaign_messages_mirrored(db: &Db, tenant_id: i64) -> anyhow::Result<i64> {
    let sql = format!(
        "SELECT COUNT(*) AS n FROM messages WHERE tenant_id = {tenant_id} AND from_me
         AND wa_id NOT LIKE 'SCALE%' AND wa_id NOT LIKE 'BENCHW%'"
    );
    number(db, &sql, "message count").await
}

/// Measures how late a task on this (the system) arbiter wakes: a stall of the arbiter shows
/// as a late wake-up.
struct StallProbe {
    running: Rc<Cell<bool>>,
    task: actix_web::rt::task::JoinHandle<Duration>,
}

impl StallProbe {
    fn start() -> StallProbe {
        let running = Rc::new(Cell::new(true));
        let flag = running.clone();
        let task = actix_web::rt::spawn(async move {
            let mut longest = Duration::ZERO;
            while flag.get() {
                let at = Instant::now();
                actix_web::rt::time::sleep(PROBE_EVERY).await;
                longest = longest.max(at.elapsed().saturating_sub(PROBE_EVERY));
            }
            longest
        });
        StallProbe { running, task }
    }

    /// The longest lateness seen.
    async fn stop(self) -> anyhow::Result<Duration> {
        self.running.set(false);
        self.task.await.context("the stall probe failed")
    }
}

/// The phone of lead `n` (digits only, as stored).
fn phone_of(n: u32) -> String {
    format!("6019{n:08}")
}

/// Runs `call` [`CALLS`] times (one warm-up first) and reports p50/p99 in milliseconds and
/// the rows the last call answered.
async fn timed<F, Fut>(call: F) -> anyhow::Result<Value>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<usize>>,
{
    let mut rows = call().await?;
    let mut millis = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let at = Instant::now();
        rows = call().await?;
        millis.push(at.elapsed().as_secs_f64() * 1000.0);
    }
    millis.sort_by(f64::total_cmp);
    Ok(json!({
        "p50_ms": percentile(&millis, 0.5).map(|v| round(v, 2)),
        "p99_ms": percentile(&millis, 0.99).map(|v| round(v, 2)),
        "rows": rows,
    }))
}

/// Deletes `list_id` (the big list) while a task writes one chat message every
/// [`WRITER_EVERY`] on `device_id`, as the chat mirror does during a campaign.
async fn delete_beside_a_writer(
    db: &Db,
    tenant_id: i64,
    list_id: i64,
    device_id: i64,
) -> anyhow::Result<Value> {
    let sql =
        format!("SELECT id AS n FROM chats WHERE device_id = {device_id} ORDER BY id LIMIT 1");
    let chat_id = number(db, &sql, "chat of the device").await?;
    let done = Rc::new(Cell::new(false));
    let writer = {
        let (db, done) = (db.clone(), done.clone());
        actix_web::rt::spawn(async move {
            let (mut written, mut lost, mut longest) = (0u64, 0u64, Duration::ZERO);
            while !done.get() {
                let at = Instant::now();
                let sql = format!(
                    "INSERT INTO messages (tenant_id, device_id, chat_id, wa_id, sender_jid, from_me,
                     body, status, sent_at, created_at, kind)
                     VALUES ({tenant_id}, {device_id}, {chat_id}, 'BENCHW{written}-{lost}', 'x', false,
                     'during the delete', 'received', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'text')"
                );
                let result: Result<usize, DbError> = async {
                    db_run!(&db, |conn| {
                        diesel::sql_query(sql)
                            .execute(conn)
                            .await
                            .map_err(DbError::from)
                    })
                }
                .await;
                longest = longest.max(at.elapsed());
                match result {
                    Ok(_) => written += 1,
                    Err(_) => lost += 1,
                }
                actix_web::rt::time::sleep(WRITER_EVERY).await;
            }
            (written, lost, longest)
        })
    };
    // Let the writer settle before the delete starts.
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let deleted = leads::delete_list(db, tenant_id, list_id).await;
    let seconds = started.elapsed().as_secs_f64();
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    done.set(true);
    let (written, lost, longest) = writer.await.context("the writer task failed")?;
    deleted?;
    Ok(json!({
        "seconds": round(seconds, 2),
        "writer_messages": written,
        "writer_lost": lost,
        "writer_longest_wait_ms": round(longest.as_secs_f64() * 1000.0, 1),
    }))
}

/// The tenant's list ids (the big list first) and its first device.
async fn ids(db: &Db, tenant_id: i64) -> anyhow::Result<(Vec<i64>, i64)> {
    let sql = format!("SELECT id AS n FROM lead_lists WHERE tenant_id = {tenant_id} ORDER BY id");
    let lists = numbers(db, &sql).await?;
    let sql = format!("SELECT MIN(id) AS n FROM devices WHERE tenant_id = {tenant_id}");
    let device = number(db, &sql, "device").await?;
    Ok((lists, device))
}

/// The database's size on disk, in bytes.
async fn database_bytes(db: &Db) -> anyhow::Result<i64> {
    let sql = match db {
        Db::Sqlite(_) => {
            "SELECT page_count * page_size AS n FROM pragma_page_count(), pragma_page_size()"
        }
        Db::Postgres(_) => "SELECT pg_database_size(current_database()) AS n",
    };
    number(db, sql, "database size").await
}

/// The dataset: `devices` devices, [`LISTS`] lists (the first with a tenth of the leads),
/// `leads` leads named `Lead <n> ` with phone [`phone_of`], one chat per lead on device
/// `n mod devices` and [`MESSAGES_PER_CHAT`] messages per chat, alternately sent and received,
/// one minute apart; then `ANALYZE`.
async fn seed(db: &Db, tenant_id: i64, leads: u32, devices: u32) -> anyhow::Result<()> {
    let big = leads / 10;
    let per_list = (leads - big).div_ceil(LISTS - 1).max(1);
    // List of lead n: 0 for the first tenth, then 1..LISTS in equal runs.
    let list_of = format!("CASE WHEN n < {big} THEN 0 ELSE 1 + (n - {big}) / {per_list} END");
    let script = match db {
        Db::Sqlite(_) => format!(
            "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < {devices} - 1)
             INSERT INTO devices (tenant_id, name, status, created_at, updated_at)
             SELECT {tenant_id}, 'Device ' || n, 'online', datetime('now'), datetime('now') FROM s;
             UPDATE devices SET jid = printf('6010%07d:1@s.whatsapp.net', id) WHERE tenant_id = {tenant_id};
             WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < {LISTS} - 1)
             INSERT INTO lead_lists (tenant_id, name, created_at, updated_at)
             SELECT {tenant_id}, 'List ' || n, datetime('now'), datetime('now') FROM s;
             CREATE TEMP TABLE scale_ids AS
               SELECT (SELECT MIN(id) FROM lead_lists WHERE tenant_id = {tenant_id}) AS list0,
                      (SELECT MIN(id) FROM devices WHERE tenant_id = {tenant_id}) AS device0;
             WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < {leads} - 1)
             INSERT INTO leads (tenant_id, list_id, name, phone, tags, status, fields, created_at, updated_at)
             SELECT {tenant_id}, list0 + {list_of}, 'Lead ' || n || ' ', printf('6019%08d', n),
                    ',vip,', 'new', '{{}}', datetime('now'), datetime('now')
             FROM s, scale_ids;
             WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < {leads} - 1)
             INSERT INTO chats (tenant_id, device_id, jid, name, last_message_text, last_message_at,
                                unread_count, created_at, updated_at)
             SELECT {tenant_id}, device0 + n % {devices}, printf('6019%08d', n) || '@s.whatsapp.net',
                    'Lead ' || n, 'order ' || n, datetime('now', '-' || (n % 1440) || ' minutes'),
                    0, datetime('now'), datetime('now')
             FROM s, scale_ids;
             WITH RECURSIVE k(m) AS (SELECT 0 UNION ALL SELECT m + 1 FROM k WHERE m < {MESSAGES_PER_CHAT} - 1)
             INSERT INTO messages (tenant_id, device_id, chat_id, wa_id, sender_jid, from_me, body,
                                   status, sent_at, created_at, kind)
             SELECT c.tenant_id, c.device_id, c.id, 'SCALE' || c.id || '-' || k.m, c.jid, k.m % 2 = 0,
                    'message ' || k.m || ' about order ' || (c.id * 7 % 100000), 'read',
                    datetime(c.last_message_at, '-' || ({MESSAGES_PER_CHAT} - k.m) || ' minutes'),
                    datetime('now'), 'text'
             FROM chats c, k WHERE c.tenant_id = {tenant_id};
             DROP TABLE scale_ids;
             ANALYZE;"
        ),
        Db::Postgres(_) => format!(
            "INSERT INTO devices (tenant_id, name, status, created_at, updated_at)
             SELECT {tenant_id}, 'Device ' || n, 'online', now(), now()
             FROM generate_series(0, {devices} - 1) n;
             UPDATE devices SET jid = '6010' || lpad(id::text, 7, '0') || ':1@s.whatsapp.net'
             WHERE tenant_id = {tenant_id};
             INSERT INTO lead_lists (tenant_id, name, created_at, updated_at)
             SELECT {tenant_id}, 'List ' || n, now(), now() FROM generate_series(0, {LISTS} - 1) n;
             CREATE TEMP TABLE scale_ids AS
               SELECT (SELECT MIN(id) FROM lead_lists WHERE tenant_id = {tenant_id}) AS list0,
                      (SELECT MIN(id) FROM devices WHERE tenant_id = {tenant_id}) AS device0;
             INSERT INTO leads (tenant_id, list_id, name, phone, tags, status, fields, created_at, updated_at)
             SELECT {tenant_id}, list0 + {list_of}, 'Lead ' || n || ' ', '6019' || lpad(n::text, 8, '0'),
                    ',vip,', 'new', '{{}}', now(), now()
             FROM generate_series(0, {leads} - 1) n, scale_ids;
             INSERT INTO chats (tenant_id, device_id, jid, name, last_message_text, last_message_at,
                                unread_count, created_at, updated_at)
             SELECT {tenant_id}, device0 + n % {devices},
                    '6019' || lpad(n::text, 8, '0') || '@s.whatsapp.net', 'Lead ' || n, 'order ' || n,
                    now() - (n % 1440) * INTERVAL '1 minute', 0, now(), now()
             FROM generate_series(0, {leads} - 1) n, scale_ids;
             INSERT INTO messages (tenant_id, device_id, chat_id, wa_id, sender_jid, from_me, body,
                                   status, sent_at, created_at, kind)
             SELECT c.tenant_id, c.device_id, c.id, 'SCALE' || c.id || '-' || m, c.jid, m % 2 = 0,
                    'message ' || m || ' about order ' || (c.id * 7 % 100000), 'read',
                    c.last_message_at - ({MESSAGES_PER_CHAT} - m) * INTERVAL '1 minute', now(), 'text'
             FROM chats c, generate_series(0, {MESSAGES_PER_CHAT} - 1) m WHERE c.tenant_id = {tenant_id};
             DROP TABLE scale_ids;
             ANALYZE;"
        ),
    };
    db_run!(db, |conn| {
        conn.batch_execute(&script).await.map_err(DbError::from)
    })?;
    Ok(())
}

//! Retention (`[retention]`, `wafleet::retention::sweep`): rows older than their limit go,
//! younger ones stay, rows still to send stay, and a finished campaign's progress and a
//! sequence's report read the same after their outbox rows went. The sweep is called with its
//! own `now`, so nothing waits for days or for the hourly job.

use chrono::{Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use wafleet::broadcast::campaign::progress::progress;
use wafleet::broadcast::campaign::store as campaign_store;
use wafleet::broadcast::sequence::model::{SequenceFields, SequenceStatus, StepFields};
use wafleet::broadcast::sequence::report::report;
use wafleet::broadcast::sequence::store as sequence_store;
use wafleet::config::RetentionSettings;
use wafleet::db::schema::{
    audit_log, campaigns, chats, device_events, lead_lists, leads, messages, outbox, reactions,
    sequence_enrollments, stats_daily, stats_hourly,
};
use wafleet::db::{Db, DbError};
use wafleet::retention::{sweep, Swept, CHUNK_ROWS};

use crate::helpers::TestApp;

// The sequence engine must not move the enrolments this test sets up while it runs.
crate::both_backends!(
    with &[("WAFLEET__BROADCAST__SEQUENCE_TICK_MS", "3600000")];
    old_rows_go_young_rows_stay_and_reports_hold,
    bulk_deletes_run_in_chunks
);

/// Runs one diesel-async statement (an expression ending in the call to await) on either
/// backend and unwraps it.
macro_rules! sql {
    ($db:expr, |$conn:ident| $body:expr) => {{
        let db: &Db = $db;
        let result: Result<_, DbError> =
            async { wafleet::db_run!(db, |$conn| { $body.await.map_err(DbError::from) }) }.await;
        result.unwrap()
    }};
}

/// 30 days for every table.
fn thirty_days() -> RetentionSettings {
    RetentionSettings {
        messages_days: 30,
        outbox_days: 30,
        audit_days: 30,
        webhooks_days: 0,
        stats_days: 30,
        interval_hours: 24,
    }
}

/// A campaign row as the campaign engine leaves it.
async fn campaign(db: &Db, tenant_id: i64, status: &str, finished: Option<NaiveDateTime>) -> i64 {
    let now = Utc::now().naive_utc();
    sql!(db, |conn| diesel::insert_into(campaigns::table)
        .values((
            campaigns::tenant_id.eq(tenant_id),
            campaigns::name.eq(format!("campaign {status}")),
            campaigns::status.eq(status),
            campaigns::message.eq("Hello"),
            campaigns::target.eq("{}"),
            campaigns::devices.eq(r#"{"mode":"all_online"}"#),
            campaigns::pacing.eq("{}"),
            campaigns::on_device_loss.eq("move"),
            campaigns::started_at.eq(finished.map(|f| f - Duration::hours(1))),
            campaigns::finished_at.eq(finished),
            campaigns::created_at.eq(now),
            campaigns::updated_at.eq(now),
        ))
        .returning(campaigns::id)
        .get_result::<i64>(conn))
}

/// One outbox row of `campaign_id`.
struct Row {
    lead: Option<i64>,
    device: Option<i64>,
    step: i64,
    status: &'static str,
    created: NaiveDateTime,
    sent: Option<NaiveDateTime>,
}

async fn outbox_row(db: &Db, tenant_id: i64, campaign_id: i64, row: Row) {
    sql!(db, |conn| diesel::insert_into(outbox::table)
        .values((
            outbox::tenant_id.eq(tenant_id),
            outbox::campaign_id.eq(campaign_id),
            outbox::lead_id.eq(row.lead),
            outbox::device_id.eq(row.device),
            outbox::phone.eq("60123000001"),
            outbox::body.eq("Hello"),
            outbox::message_id.eq(uuid::Uuid::new_v4().simple().to_string()),
            outbox::status.eq(row.status),
            outbox::attempts.eq(1i64),
            outbox::created_at.eq(row.created),
            outbox::sent_at.eq(row.sent),
            outbox::step.eq(row.step),
        ))
        .execute(conn));
}

/// Live outbox rows of a campaign, as (step, status), sorted.
async fn live_rows(db: &Db, campaign_id: i64) -> Vec<(i64, String)> {
    let mut rows: Vec<(i64, String)> = sql!(db, |conn| outbox::table
        .filter(outbox::campaign_id.eq(campaign_id))
        .select((outbox::step, outbox::status))
        .load(conn));
    rows.sort();
    rows
}

async fn audit_entry(db: &Db, action: &str, at: NaiveDateTime) {
    sql!(db, |conn| diesel::insert_into(audit_log::table)
        .values((audit_log::action.eq(action), audit_log::created_at.eq(at)))
        .execute(conn));
}

async fn audit_count(db: &Db, action: &str) -> i64 {
    sql!(db, |conn| audit_log::table
        .filter(audit_log::action.eq(action))
        .count()
        .get_result::<i64>(conn))
}

async fn old_rows_go_young_rows_stay_and_reports_hold(app: TestApp) {
    let db = &app.db;
    let now = Utc::now();
    let old = (now - Duration::days(40)).naive_utc();
    let young = (now - Duration::days(5)).naive_utc();
    let tenant = wafleet::auth::store::insert_tenant(db, "Keep", "Asia/Kuala_Lumpur")
        .await
        .unwrap();
    let device = wafleet::device::store::insert_device(db, tenant.id, "Sales")
        .await
        .unwrap()
        .id;

    // The home page's figures of an old and a young hour (device and tenant rows, and the
    // device's daily row), and an old
    // and a young history entry of the device.
    for at in [old, young] {
        let mut bumps = wafleet::stats::model::Bumps::default();
        bumps.add(tenant.id, device, at, wafleet::stats::model::Count::Sent);
        let result: Result<(), DbError> = async {
            wafleet::db_run!(db, |conn| {
                wafleet::stats::store::apply(wafleet::db::Conn::from(conn), &bumps).await
            })
        }
        .await;
        result.unwrap();
    }
    for at in [old, young] {
        sql!(db, |conn| diesel::insert_into(device_events::table)
            .values((
                device_events::tenant_id.eq(tenant.id),
                device_events::device_id.eq(device),
                device_events::kind.eq("status"),
                device_events::at.eq(at),
            ))
            .execute(conn));
    }

    // Chats and messages: one old and one young message with a reaction each.
    let tenant_id = tenant.id;
    let chat = |jid: &'static str, at: NaiveDateTime, text: &'static str| async move {
        sql!(db, |conn| diesel::insert_into(chats::table)
            .values((
                chats::tenant_id.eq(tenant_id),
                chats::device_id.eq(device),
                chats::jid.eq(jid),
                chats::last_message_text.eq(Some(text)),
                chats::last_message_at.eq(Some(at)),
                chats::unread_count.eq(0i64),
                chats::created_at.eq(at),
                chats::updated_at.eq(at),
            ))
            .returning(chats::id)
            .get_result::<i64>(conn))
    };
    let quiet_chat = chat("60111@s.whatsapp.net", old, "old preview").await;
    let busy_chat = chat("60222@s.whatsapp.net", young, "young preview").await;
    for (chat_id, wa_id, at) in [(quiet_chat, "OLD1", old), (busy_chat, "YOUNG1", young)] {
        sql!(db, |conn| diesel::insert_into(messages::table)
            .values((
                messages::tenant_id.eq(tenant.id),
                messages::device_id.eq(device),
                messages::chat_id.eq(chat_id),
                messages::wa_id.eq(wa_id),
                messages::sender_jid.eq("60111@s.whatsapp.net"),
                messages::from_me.eq(false),
                messages::body.eq(Some(wa_id)),
                messages::status.eq("received"),
                messages::kind.eq("text"),
                messages::sent_at.eq(at),
                messages::created_at.eq(at),
            ))
            .execute(conn));
        sql!(db, |conn| diesel::insert_into(reactions::table)
            .values((
                reactions::device_id.eq(device),
                reactions::message_wa_id.eq(wa_id),
                reactions::sender_jid.eq("60999@s.whatsapp.net"),
                reactions::emoji.eq("👍"),
                reactions::reacted_at.eq(at),
            ))
            .execute(conn));
    }

    audit_entry(db, "test.old", old).await;
    audit_entry(db, "test.old", old).await;
    audit_entry(db, "test.young", young).await;

    // Campaigns: finished long ago, finished recently, and paused (not finished) with old rows.
    let done_long_ago = campaign(db, tenant.id, "completed", Some(old)).await;
    let done_lately = campaign(db, tenant.id, "cancelled", Some(young)).await;
    let paused = campaign(db, tenant.id, "paused", None).await;
    let sent = |status: &'static str, device: Option<i64>| Row {
        lead: None,
        device,
        step: 0,
        status,
        created: old,
        sent: Some(old),
    };
    for row in [
        sent("read", Some(device)),
        sent("delivered", Some(device)),
        sent("failed", None),
        sent("skipped", None),
    ] {
        outbox_row(db, tenant.id, done_long_ago, row).await;
    }
    outbox_row(db, tenant.id, done_lately, sent("sent", Some(device))).await;
    outbox_row(db, tenant.id, paused, sent("sent", Some(device))).await;
    let waiting = Row {
        sent: None,
        ..sent("pending", Some(device))
    };
    outbox_row(db, tenant.id, paused, waiting).await;

    // A sequence of three steps and three leads: one moved on past step 1 (its step-1 row may
    // go), one still active at step 1 (the engine has yet to see its row: it stays), one
    // completed with an old step 1 (goes) and a young step 2 (stays).
    let sequence = sequence_store::insert_sequence(
        db,
        tenant.id,
        None,
        &SequenceFields {
            name: "Drip".into(),
            description: String::new(),
            trigger_tag: None,
            stop_on_reply: true,
            next_sequence_id: None,
        },
        SequenceStatus::Active,
        &[1, 2, 3].map(|n| StepFields {
            message: format!("Step {n}"),
            delay_minutes: 60,
            window: None,
            on_reply: None,
        }),
    )
    .await
    .unwrap();
    let list = sql!(db, |conn| diesel::insert_into(lead_lists::table)
        .values((
            lead_lists::tenant_id.eq(tenant.id),
            lead_lists::name.eq("Drip leads"),
            lead_lists::created_at.eq(old),
            lead_lists::updated_at.eq(old),
        ))
        .returning(lead_lists::id)
        .get_result::<i64>(conn));
    let mut lead_ids = Vec::new();
    for (n, (status, step)) in [("waiting", 2i64), ("active", 1), ("completed", 4)]
        .into_iter()
        .enumerate()
    {
        let phone = format!("6013000000{n}");
        let lead = sql!(db, |conn| diesel::insert_into(leads::table)
            .values((
                leads::tenant_id.eq(tenant.id),
                leads::list_id.eq(list),
                leads::name.eq(format!("Lead {n}")),
                leads::phone.eq(&phone),
                leads::tags.eq(","),
                leads::status.eq("new"),
                leads::fields.eq("{}"),
                leads::created_at.eq(old),
                leads::updated_at.eq(old),
            ))
            .returning(leads::id)
            .get_result::<i64>(conn));
        sql!(db, |conn| diesel::insert_into(sequence_enrollments::table)
            .values((
                sequence_enrollments::tenant_id.eq(tenant.id),
                sequence_enrollments::sequence_id.eq(sequence.id),
                sequence_enrollments::lead_id.eq(lead),
                sequence_enrollments::device_id.eq(Some(device)),
                sequence_enrollments::phone.eq(&phone),
                sequence_enrollments::status.eq(status),
                sequence_enrollments::step.eq(step),
                sequence_enrollments::source.eq("manual"),
                sequence_enrollments::enrolled_at.eq(old),
                sequence_enrollments::updated_at.eq(old),
            ))
            .execute(conn));
        lead_ids.push(lead);
    }
    let step_row = |lead: i64, step: i64, at: NaiveDateTime| Row {
        lead: Some(lead),
        device: Some(device),
        step,
        status: "read",
        created: at,
        sent: Some(at),
    };
    let carrier = sequence.campaign_id;
    for row in [
        step_row(lead_ids[0], 1, old),
        step_row(lead_ids[1], 1, old),
        step_row(lead_ids[2], 1, old),
        step_row(lead_ids[2], 2, young),
    ] {
        outbox_row(db, tenant.id, carrier, row).await;
    }

    let progress_of = |id: i64| async move {
        let campaign = campaign_store::find_campaign(db, id).await.unwrap();
        progress(db, &campaign).await.unwrap()
    };
    let report_now = || async { report(db, &sequence, 3).await.unwrap() };
    let before = (progress_of(done_long_ago).await, report_now().await);
    assert_eq!(before.0.total, 4);
    assert_eq!(before.1.steps[0].sent, 3);

    // Nothing is deleted by age with every limit at 0 (the default for messages and outbox).
    let keep_all = RetentionSettings {
        messages_days: 0,
        outbox_days: 0,
        audit_days: 0,
        webhooks_days: 0,
        stats_days: 0,
        interval_hours: 24,
    };
    assert_eq!(sweep(db, &keep_all, now).await.unwrap(), Swept::default());

    let swept = sweep(db, &thirty_days(), now).await.unwrap();
    assert_eq!(
        swept,
        Swept {
            messages: 1,
            reactions: 1,
            chat_previews: 1,
            outbox: 4 + 2,
            audit_log: 2,
            webhook_deliveries: 0,
            stats: 3,
            device_history: 1,
        }
    );
    // The young hour's figures and history entry stayed.
    let hours: Vec<NaiveDateTime> = sql!(db, |conn| stats_hourly::table
        .filter(stats_hourly::tenant_id.eq(tenant.id))
        .select(stats_hourly::hour)
        .load(conn));
    assert_eq!(hours.len(), 2, "{hours:?}");
    assert!(hours.iter().all(|h| *h > old), "{hours:?}");
    let days: Vec<NaiveDateTime> = sql!(db, |conn| stats_daily::table
        .filter(stats_daily::tenant_id.eq(tenant.id))
        .select(stats_daily::day)
        .load(conn));
    assert_eq!(days.len(), 1, "{days:?}");
    let history = wafleet::device::store::history(db, device, 10)
        .await
        .unwrap();
    assert_eq!(history.len(), 1);

    // Messages: the old one and its reaction went, the young one and its reaction stayed.
    let left: Vec<String> = sql!(db, |conn| messages::table
        .filter(messages::device_id.eq(device))
        .select(messages::wa_id)
        .load(conn));
    assert_eq!(left, ["YOUNG1"]);
    let reacted: Vec<String> = sql!(db, |conn| reactions::table
        .filter(reactions::device_id.eq(device))
        .select(reactions::message_wa_id)
        .load(conn));
    assert_eq!(reacted, ["YOUNG1"]);
    let previews: Vec<(i64, Option<String>)> = sql!(db, |conn| chats::table
        .filter(chats::device_id.eq(device))
        .order(chats::id)
        .select((chats::id, chats::last_message_text))
        .load(conn));
    assert_eq!(
        previews,
        [
            (quiet_chat, None),
            (busy_chat, Some("young preview".into()))
        ],
        "both chats stay; the old one's preview text goes with its message"
    );

    // Audit: old entries went, the young one stayed.
    assert_eq!(audit_count(db, "test.old").await, 0);
    assert_eq!(audit_count(db, "test.young").await, 1);

    // Outbox: only the long-finished campaign's rows and the old step rows the engine is done
    // with went; rows still to send, and recent ones, stayed.
    assert!(live_rows(db, done_long_ago).await.is_empty());
    assert_eq!(live_rows(db, done_lately).await, [(0, "sent".to_string())]);
    assert_eq!(
        live_rows(db, paused).await,
        [(0, "pending".to_string()), (0, "sent".to_string())]
    );
    assert_eq!(
        live_rows(db, carrier).await,
        [(1, "read".to_string()), (2, "read".to_string())]
    );
    let active_kept: i64 = sql!(db, |conn| outbox::table
        .filter(outbox::campaign_id.eq(carrier))
        .filter(outbox::lead_id.eq(Some(lead_ids[1])))
        .count()
        .get_result(conn));
    assert_eq!(active_kept, 1, "the active enrolment's row stays");

    // The reports read the same, and a second sweep neither deletes nor counts twice.
    let after = (progress_of(done_long_ago).await, report_now().await);
    assert_eq!(after, before);
    assert_eq!(
        sweep(db, &thirty_days(), now).await.unwrap(),
        Swept::default()
    );
    assert_eq!(
        (progress_of(done_long_ago).await, report_now().await),
        before
    );
}

async fn bulk_deletes_run_in_chunks(app: TestApp) {
    let db = &app.db;
    let now = Utc::now();
    let bulk = CHUNK_ROWS + 3;
    // One statement: a recursive count, each row 40 days old (PostgreSQL needs the literal
    // typed; SQLite stores timestamps as text).
    let old = (now - Duration::days(40))
        .naive_utc()
        .format("'%Y-%m-%d %H:%M:%S'")
        .to_string();
    let old = match db {
        Db::Postgres(_) => format!("CAST({old} AS TIMESTAMP)"),
        Db::Sqlite(_) => old,
    };
    let insert = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {bulk}) \
         INSERT INTO audit_log (action, created_at) SELECT 'bulk.old', {old} FROM n"
    );
    sql!(db, |conn| diesel::sql_query(&insert).execute(conn));
    audit_entry(db, "bulk.young", (now - Duration::days(1)).naive_utc()).await;
    assert_eq!(audit_count(db, "bulk.old").await, bulk);

    let only_audit = RetentionSettings {
        messages_days: 0,
        outbox_days: 0,
        audit_days: 30,
        webhooks_days: 0,
        stats_days: 0,
        interval_hours: 24,
    };
    let swept = sweep(db, &only_audit, now).await.unwrap();
    assert_eq!(swept.audit_log as i64, bulk);
    assert_eq!(audit_count(db, "bulk.old").await, 0);
    assert_eq!(audit_count(db, "bulk.young").await, 1);
}

//! Migrations: both folders in step, up → down → up, idempotent restarts, concurrent starts, and
//! `schema.rs` agreeing with the migrated databases.

use std::path::Path;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use wafleet::db::schema::{audit_log, devices, tenants, users};
use wafleet::db::{migrate, Db};
use wafleet::db_run;

use crate::helpers::{settings_with, Backend, TestApp, TestDatabase};

crate::both_backends!(
    up_down_up_and_restart_is_a_no_op,
    schema_rs_matches_the_database,
    every_foreign_key_column_leads_an_index
);

fn names(dir: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dir);
    let mut names: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn both_backends_have_the_same_migrations() {
    let sqlite = names("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, names("postgres"));
    for backend in ["sqlite", "postgres"] {
        for name in &sqlite {
            for file in ["up.sql", "down.sql"] {
                let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("migrations")
                    .join(backend)
                    .join(name)
                    .join(file);
                assert!(path.is_file(), "{} is missing", path.display());
            }
        }
    }
}

async fn up_down_up_and_restart_is_a_no_op(app: TestApp) {
    let settings = &app.settings.database;
    let again = migrate::run_pending(settings).unwrap();
    assert!(
        again.applied.is_empty(),
        "a restart re-applied {:?}",
        again.applied
    );
    let count = migrate::embedded_versions(app.db.backend_name() == "postgres")
        .unwrap()
        .len();
    assert_eq!(migrate::revert_all(settings).unwrap(), count);
    assert!(migrate::applied_versions(&app.db).await.unwrap().is_empty());
    assert_eq!(migrate::run_pending(settings).unwrap().applied.len(), count);
    assert_eq!(
        migrate::applied_versions(&app.db).await.unwrap().len(),
        count
    );
}

/// Selecting every column `schema.rs` declares, from rows written through the stores, fails if
/// a column is missing, misnamed or of an incompatible type on either backend.
async fn schema_rs_matches_the_database(app: TestApp) {
    let tenant = wafleet::auth::store::insert_tenant(&app.db, "Acme", "Asia/Kuala_Lumpur")
        .await
        .unwrap();
    wafleet::device::store::insert_device(&app.db, tenant.id, "Sales 1")
        .await
        .unwrap();
    let now = chrono::Utc::now().naive_utc();
    let db: &Db = &app.db;
    let counts: Result<(usize, usize, usize, usize), wafleet::db::DbError> = async {
        db_run!(db, |conn| {
            diesel::insert_into(users::table)
                .values((
                    users::tenant_id.eq(Some(tenant.id)),
                    users::email.eq("a@example.com"),
                    users::display_name.eq("A"),
                    users::password_hash.eq("x"),
                    users::role.eq("owner"),
                    users::is_active.eq(true),
                    users::last_login_at.eq(Some(now)),
                    users::created_at.eq(now),
                    users::updated_at.eq(now),
                ))
                .execute(conn)
                .await?;
            diesel::insert_into(audit_log::table)
                .values((
                    audit_log::tenant_id.eq(Some(tenant.id)),
                    audit_log::action.eq("test"),
                    audit_log::detail.eq(Some("{}")),
                    audit_log::created_at.eq(now),
                ))
                .execute(conn)
                .await?;
            let t = tenants::table
                .select(tenants::all_columns)
                .load::<(
                    i64,
                    String,
                    String,
                    chrono::NaiveDateTime,
                    chrono::NaiveDateTime,
                    String,
                )>(conn)
                .await?
                .len();
            let u = users::table
                .select(users::all_columns)
                .load::<(
                    i64,
                    Option<i64>,
                    String,
                    String,
                    String,
                    String,
                    bool,
                    Option<chrono::NaiveDateTime>,
                    chrono::NaiveDateTime,
                    chrono::NaiveDateTime,
                    bool,
                )>(conn)
                .await?
                .len();
            let d = devices::table
                .select(wafleet::device::Device::as_select())
                .load(conn)
                .await?
                .len();
            let a = audit_log::table
                .select(audit_log::all_columns)
                .load::<(
                    i64,
                    Option<i64>,
                    Option<i64>,
                    String,
                    Option<String>,
                    Option<String>,
                    Option<String>,
                    chrono::NaiveDateTime,
                )>(conn)
                .await?
                .len();
            Ok((t, u, d, a))
        })
    }
    .await;
    let (t, u, d, a) = counts.unwrap();
    assert!(t >= 1 && u >= 1 && d >= 1 && a >= 1, "{t} {u} {d} {a}");
}

/// Several daemons starting at once on one database: every migration is applied exactly once
/// and every starter succeeds.
#[actix_web::test]
async fn concurrent_starts_do_not_corrupt_migrations() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(database) = TestDatabase::create(backend).await else {
            eprintln!("skipped concurrent migrations on postgres: DATABASE_URL is not set");
            continue;
        };
        let settings = settings_with(&[("DB_URI", database.url.as_str())]).database;
        let runs: Vec<_> = (0..4)
            .map(|_| {
                let settings = settings.clone();
                std::thread::spawn(move || migrate::run_pending(&settings))
            })
            .collect();
        let mut applied = 0;
        for run in runs {
            applied += run.join().unwrap().unwrap().applied.len();
        }
        let expected = migrate::embedded_versions(backend == Backend::Postgres)
            .unwrap()
            .len();
        assert_eq!(
            applied, expected,
            "{backend:?}: each migration applied once in total"
        );
    }
}

/// A (table, column) pair read from the database's catalogue.
#[derive(QueryableByName, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct TableColumn {
    #[diesel(sql_type = diesel::sql_types::Text)]
    tbl: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    col: String,
}

/// Deleting a parent row makes the database look up its children by the foreign key: without an
/// index leading with that column each deleted row scans the child table (a 20,000-lead list
/// took 28 s on SQLite). Every foreign key has one, but the chat mirror's tenant columns (a
/// tenant is deleted once, and `messages` is the most written table).
async fn every_foreign_key_column_leads_an_index(app: TestApp) {
    let (keys_sql, indexed_sql) = match &app.db {
        Db::Sqlite(_) => (
            "SELECT m.name AS tbl, f.\"from\" AS col FROM sqlite_master m \
             JOIN pragma_foreign_key_list(m.name) f WHERE m.type = 'table'",
            "SELECT m.name AS tbl, ii.name AS col FROM sqlite_master m \
             JOIN pragma_index_list(m.name) il JOIN pragma_index_info(il.name) ii \
             WHERE m.type = 'table' AND ii.seqno = 0 AND ii.name IS NOT NULL \
             UNION SELECT m.name, t.name FROM sqlite_master m JOIN pragma_table_info(m.name) t \
             WHERE m.type = 'table' AND t.pk = 1",
        ),
        Db::Postgres(_) => (
            "SELECT c.conrelid::regclass::text AS tbl, a.attname::text AS col FROM pg_constraint c \
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
             WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace",
            "SELECT i.indrelid::regclass::text AS tbl, a.attname::text AS col FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]",
        ),
    };
    let load = |sql: &'static str| {
        let db = app.db.clone();
        async move {
            db_run!(&db, |conn| {
                diesel::sql_query(sql)
                    .load::<TableColumn>(conn)
                    .await
                    .map_err(wafleet::db::DbError::from)
            })
        }
    };
    let keys = load(keys_sql).await.unwrap();
    let indexed = load(indexed_sql).await.unwrap();
    assert!(keys.len() > 20, "foreign keys read: {keys:?}");
    // Tenant-wide columns of the most written tables: a tenant is deleted rarely and once (one
    // scan), and an index there costs every write.
    let exempt = [
        ("chats", "tenant_id"),
        ("messages", "tenant_id"),
        ("outbox", "tenant_id"),
    ];
    let mut missing: Vec<&TableColumn> = keys
        .iter()
        .filter(|k| !indexed.contains(k))
        .filter(|k| !exempt.contains(&(k.tbl.as_str(), k.col.as_str())))
        .collect();
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "foreign keys without an index: {missing:?}"
    );
}

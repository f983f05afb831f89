//! SQL helpers both backends understand.

use diesel::expression::{AppearsOnTable, Expression, ValidGrouping};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::{IsNull, Output, ToSql};
use diesel::sql_types::{Array, Bool, Text};
use diesel::sqlite::Sqlite;
use diesel::QueryResult;
use serde::Serialize;

diesel::define_sql_function! {
    /// `lower(text)`: portable case folding for case-insensitive search.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// `%term%` with LIKE wildcards in `term` escaped by `\` (use with `.escape('\\')`).
pub fn like_pattern(term: &str) -> String {
    let escaped = term
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// `column` is one of `values`, with SQL text that does not depend on how many there are, so
/// the connection prepares the statement once and keeps it (diesel's `eq_any` writes one `?`
/// per value on SQLite, a new statement for every length, never cached). PostgreSQL binds the
/// values as one array (`column = ANY($1)`); SQLite as one JSON array it reads with `json_each`
/// (`column IN (SELECT value FROM json_each(?))`), which still probes the column's index per
/// value.
pub fn one_of<C, T>(column: C, values: Vec<T>) -> OneOf<C, T> {
    OneOf {
        column,
        values: Values(values),
    }
}

/// Rows bound as one JSON array (each row a JSON array of its columns) that SQLite reads with
/// `json_each`, `json_extract(value, '$[i]')` for column `i`: a multi-row INSERT under SQL text
/// that does not depend on how many rows there are, prepared once per connection. Bind it as
/// `Text`; the JSON is written when the statement binds it.
pub fn json_rows<T>(rows: Vec<T>) -> Values<T> {
    Values(rows)
}

/// See [`one_of`].
#[derive(Debug, Clone)]
pub struct OneOf<C, T> {
    column: C,
    values: Values<T>,
}

/// The values of a [`OneOf`] or of [`json_rows`]: bound as they are on PostgreSQL, as one JSON
/// array (written when the statement binds it) on SQLite.
#[derive(Debug, Clone)]
pub struct Values<T>(Vec<T>);

impl<T: Serialize + std::fmt::Debug> ToSql<Text, Sqlite> for Values<T> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> diesel::serialize::Result {
        out.set_value(serde_json::to_string(&self.0)?);
        Ok(IsNull::No)
    }
}

impl<C: Expression, T> Expression for OneOf<C, T> {
    type SqlType = Bool;
}

impl<C: AppearsOnTable<QS>, T, QS: ?Sized> AppearsOnTable<QS> for OneOf<C, T> where
    OneOf<C, T>: Expression
{
}

impl<C: ValidGrouping<()>, T> ValidGrouping<()> for OneOf<C, T> {
    type IsAggregate = C::IsAggregate;
}

impl<C: QueryId + 'static, T: 'static> QueryId for OneOf<C, T> {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = C::HAS_STATIC_QUERY_ID;
}

impl<C: QueryFragment<Sqlite>, T> QueryFragment<Sqlite> for OneOf<C, T>
where
    Values<T>: ToSql<Text, Sqlite>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        self.column.walk_ast(out.reborrow())?;
        out.push_sql(" IN (SELECT value FROM json_each(");
        out.push_bind_param::<Text, _>(&self.values)?;
        out.push_sql("))");
        Ok(())
    }
}

impl<C, T> QueryFragment<Pg> for OneOf<C, T>
where
    C: QueryFragment<Pg> + Expression,
    C::SqlType: 'static,
    Pg: diesel::sql_types::HasSqlType<C::SqlType>,
    Vec<T>: ToSql<Array<C::SqlType>, Pg>,
    T: std::fmt::Debug,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.column.walk_ast(out.reborrow())?;
        out.push_sql(" = ANY(");
        out.push_bind_param::<Array<C::SqlType>, _>(&self.values.0)?;
        out.push_sql(")");
        Ok(())
    }
}

/// (device, WhatsApp id) pairs a statement joins as the table `named (device_id, wa_id)`, bound
/// with SQL text that does not depend on how many there are, so one statement covers every
/// device of a batch (diesel parses a raw statement again on every run: a few per batch).
/// PostgreSQL binds two arrays and unnests them ([`Pairs::PG_SOURCE`], `$1` and `$2`); SQLite
/// binds one JSON array of `[device, id]` and reads it with `json_each`
/// ([`Pairs::SQLITE_SOURCE`], `?1`). Joined in an `UPDATE … FROM`, either probes the table's
/// (device, id) index once per pair (a row-value `IN` would let SQLite use the device alone).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pairs {
    devices: Vec<i64>,
    ids: Vec<String>,
}

impl Pairs {
    /// The pairs' source on PostgreSQL: parameters `$1` (devices) and `$2` (ids).
    pub const PG_SOURCE: &str = "unnest($1::int8[], $2::text[]) AS named (device_id, wa_id)";
    /// The pairs' source on SQLite: parameter `?1`, the pairs as JSON.
    pub const SQLITE_SOURCE: &str = "(SELECT json_extract(value, '$[0]') AS device_id, \
         json_extract(value, '$[1]') AS wa_id FROM json_each(?1)) AS named";

    /// Adds a device's ids.
    pub fn extend(&mut self, device_id: i64, ids: impl IntoIterator<Item = String>) {
        for id in ids {
            self.devices.push(device_id);
            self.ids.push(id);
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// PostgreSQL's binds: the devices and the ids, as two arrays of equal length.
    pub fn arrays(&self) -> (&[i64], &[String]) {
        (&self.devices, &self.ids)
    }

    /// SQLite's bind: `[[device, "id"], …]`.
    pub fn json(&self) -> String {
        let pairs: Vec<(i64, &str)> = self
            .devices
            .iter()
            .zip(&self.ids)
            .map(|(device, id)| (*device, id.as_str()))
            .collect();
        serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into())
    }
}

/// The one column of a test's `SELECT COUNT(*) AS n …` (or any integer named `n`).
#[cfg(test)]
#[derive(diesel::QueryableByName)]
pub struct Count {
    /// The value.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub n: i64,
}

/// A freshly migrated SQLite database in a temporary directory (kept while the directory
/// lives), opened by one plain connection: for tests of statements and schema.
#[cfg(test)]
pub fn migrated_sqlite() -> (tempfile::TempDir, diesel::SqliteConnection) {
    use diesel::Connection;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test.db");
    let settings = crate::config::DatabaseSettings {
        url: secrecy::SecretString::from(format!("sqlite://{}", path.display())),
        max_connections: 1,
        acquire_timeout_secs: 1,
        sqlite_busy_timeout_ms: 1000,
        sqlite_cache_mib: 2,
    };
    crate::db::migrate::run_pending(&settings).unwrap();
    let conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    (dir, conn)
}

/// The steps of SQLite's plan for `sql` (its parameters left unbound) over a freshly migrated
/// database: what a test checks a hot statement's index use with.
#[cfg(test)]
pub fn sqlite_plan(sql: &str) -> Vec<String> {
    use diesel::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Step {
        #[diesel(sql_type = Text)]
        detail: String,
    }

    let (_dir, mut conn) = migrated_sqlite();
    diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
        .load::<Step>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|step| step.detail)
        .collect()
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    use diesel::{debug_query, Connection, SqliteConnection};

    use super::one_of;
    use crate::db::schema::opt_outs;

    /// The SQL without its binds (`debug_query` appends them after `--`).
    fn sql_text<DB>(query: &impl diesel::query_builder::QueryFragment<DB>) -> String
    where
        DB: diesel::backend::Backend + Default,
        DB::QueryBuilder: Default,
    {
        let full = debug_query::<DB, _>(query).to_string();
        full.split(" -- binds").next().unwrap().to_string()
    }

    fn phones(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("4915{i:08}")).collect()
    }

    #[test]
    fn the_statement_text_is_the_same_for_any_number_of_values() {
        let of = |n| {
            opt_outs::table
                .filter(one_of(opt_outs::phone, phones(n)))
                .select(opt_outs::phone)
        };
        let (one, many) = (of(1), of(300));
        assert_eq!(
            sql_text::<diesel::sqlite::Sqlite>(&one),
            sql_text::<diesel::sqlite::Sqlite>(&many)
        );
        assert!(sql_text::<diesel::sqlite::Sqlite>(&one).contains("json_each"));
        assert_eq!(
            sql_text::<diesel::pg::Pg>(&one),
            sql_text::<diesel::pg::Pg>(&many)
        );
        assert!(sql_text::<diesel::pg::Pg>(&one).contains("= ANY($1)"));
        // What it replaces: one placeholder per value.
        let eq_any = |n| {
            opt_outs::table
                .filter(opt_outs::phone.eq_any(phones(n)))
                .select(opt_outs::phone)
        };
        assert_ne!(
            sql_text::<diesel::sqlite::Sqlite>(&eq_any(1)),
            sql_text::<diesel::sqlite::Sqlite>(&eq_any(300))
        );
    }

    #[test]
    fn sqlite_finds_exactly_the_listed_values_texts_and_integers() {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        conn.batch_execute(
            "CREATE TABLE opt_outs (id INTEGER PRIMARY KEY, tenant_id BIGINT NOT NULL, \
             phone TEXT NOT NULL, source TEXT NOT NULL, created_at TIMESTAMP NOT NULL); \
             INSERT INTO opt_outs (tenant_id, phone, source, created_at) VALUES \
             (1, '491500000001', 'manual', '2026-01-01'), (1, '491500000002', 'manual', '2026-01-01'), \
             (1, 'with \"quote', 'manual', '2026-01-01');",
        )
        .unwrap();
        let found: Vec<String> = opt_outs::table
            .filter(one_of(
                opt_outs::phone,
                vec![
                    "491500000002".to_string(),
                    "with \"quote".into(),
                    "nobody".into(),
                ],
            ))
            .order(opt_outs::id)
            .select(opt_outs::phone)
            .load(&mut conn)
            .unwrap();
        assert_eq!(found, ["491500000002", "with \"quote"]);
        let ids: Vec<i64> = opt_outs::table
            .filter(one_of(opt_outs::id, vec![3i64, 1, 99]))
            .order(opt_outs::id)
            .select(opt_outs::id)
            .load(&mut conn)
            .unwrap();
        assert_eq!(ids, [1, 3]);
        let none: Vec<i64> = opt_outs::table
            .filter(one_of(opt_outs::id, Vec::<i64>::new()))
            .select(opt_outs::id)
            .load(&mut conn)
            .unwrap();
        assert!(none.is_empty());
    }
}

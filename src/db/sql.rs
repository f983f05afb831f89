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

/// See [`one_of`].
#[derive(Debug, Clone)]
pub struct OneOf<C, T> {
    column: C,
    values: Values<T>,
}

/// The values of a [`OneOf`]: bound as they are on PostgreSQL, as one JSON array (written when
/// the statement binds it) on SQLite.
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

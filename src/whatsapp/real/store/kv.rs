//! The query shapes every `wa_` table shares, written once as macros, and the conversions
//! between the library's values and our columns.
//!
//! Each macro takes the store (`self`) and a table of [`super::schema`], and adds the
//! `device_id = <this store's device>` filter or key itself, so no query can reach another
//! device's rows. Filters are `column.op(arg)` on the table's own columns:
//!
//! ```text
//! find!(self, wa_sessions[address.eq(a)] => record)             // Option<Vec<u8>>, first row
//! load!(self, wa_prekeys[] order key_id.asc() => (key_id, record)) // Vec<(i64, Vec<u8>)>
//! delete!(self, count wa_sent_messages[created_at.lt(cutoff)])  // how many it deleted
//! upsert!(self, wa_group_metadata[group_jid = g] set [info = blob, updated_at = now]);
//! upsert!(self, for (a, r) in rows => wa_sessions[address = &**a] set [record = &r[..]]);
//! ```
//!
//! `upsert!` inserts the row, or on a conflict of its key overwrites the `set` columns (`once`
//! columns are written by the insert only, `then` adds explicit updates). Its `for` form writes
//! every row in one transaction, and touches no connection for an empty batch. Each macro
//! evaluates to the library's `Result`. Writes (`upsert!`, `delete!`, [`tx!`], [`fenced!`])
//! check the store's fence first when it has one (see [`crate::db::fence`]). The trait files
//! take these helpers, diesel's query traits, the tables, the store and the library's `Result`
//! with `use super::kv::*`.

pub(super) use diesel::prelude::*;
pub(super) use diesel_async::{AsyncConnection, RunQueryDsl};
pub(super) use whatsapp_rust::async_trait;
pub(super) use whatsapp_rust::wacore::store::error::{Result, StoreError};

pub(super) use super::schema::*;
pub(super) use super::WaStore;
use crate::db::DbError;

impl From<DbError> for StoreError {
    fn from(err: DbError) -> Self {
        StoreError::Database(Box::new(err))
    }
}

/// Runs `$body` (a diesel query's result) on a connection `$conn` of this store's database,
/// with `$id` bound to its device; evaluates to the library's `Result`. A failed pool checkout
/// returns from the enclosing method (as in every `db_run!`).
macro_rules! run {
    ($s:expr, |$conn:ident, $id:ident| $body:expr) => {{
        let $id = $s.device_id;
        $crate::db_run!(&$s.db, |$conn| { $body.map_err($crate::db::DbError::from) })
            .map_err(whatsapp_rust::wacore::store::error::StoreError::from)
    }};
}

/// [`run!`] with `$body` (statements using `?`) in one transaction that first checks the
/// store's fence: a write of a device whose lease moved on fails and writes nothing. With
/// `@value`, `$body` evaluates to the transaction's `Result` (error type `DbError`).
macro_rules! tx {
    (@value $s:expr, |$conn:ident, $id:ident| $body:expr) => {{
        let fence = $s.fence.as_ref();
        run!($s, |conn, $id| conn.transaction::<_, $crate::db::DbError, _>(async |$conn| {
            if let Some(fence) = fence {
                $crate::db::fence::FenceCheck::check_fence(&mut *$conn, fence).await?;
            }
            $body
        }).await)
    }};
    ($s:expr, |$conn:ident, $id:ident| $body:block) => {
        tx!(@value $s, |$conn, $id| {
            $body
            Ok(())
        })
    };
}

/// A single write statement `$body`: as [`run!`] when the store has no fence, otherwise in a
/// [`tx!`] (which checks the fence first). Evaluates to the statement's value.
macro_rules! fenced {
    ($s:expr, |$conn:ident, $id:ident| $body:expr) => {
        match $s.fence {
            None => run!($s, |$conn, $id| $body),
            Some(_) => tx!(@value $s, |$conn, $id| Ok($body?)),
        }
    };
}

/// The rows of table `$t` that belong to device `$id` and pass every `column.op(arg)` filter.
macro_rules! rows {
    ($t:ident, $id:expr; $($col:ident.$op:ident($($arg:expr)?)),*) => {
        $t::table.filter($t::device_id.eq($id))$(.filter($t::$col.$op($($arg)?)))*
    };
}

/// [`rows!`] with an optional `order column.direction()` and a select: `=> column` or
/// `=> (column, …)`.
macro_rules! query {
    ($id:ident, $t:ident[$($f:tt)*] $(order $o:ident.$dir:ident())? => ($($c:ident),+)) => {
        rows!($t, $id; $($f)*)$(.order($t::$o.$dir()))?.select(($($t::$c),+))
    };
    ($id:ident, $t:ident[$($f:tt)*] $(order $o:ident.$dir:ident())? => $c:ident) => {
        rows!($t, $id; $($f)*)$(.order($t::$o.$dir()))?.select($t::$c)
    };
}

/// The first row a [`query!`] of this store's device selects, if any.
macro_rules! find {
    ($s:expr, $($q:tt)+) => {
        run!($s, |conn, id| query!(id, $($q)+).first(conn).await.optional())
    };
}

/// Every row a [`query!`] of this store's device selects.
macro_rules! load {
    ($s:expr, $($q:tt)+) => {
        run!($s, |conn, id| query!(id, $($q)+).load(conn).await)
    };
}

/// Deletes this store's rows of `$t` that pass the filters; `count` makes it evaluate to how
/// many it deleted (the library's `u32`, saturating) instead of `()`.
macro_rules! delete {
    ($s:expr, count $t:ident[$($f:tt)*]) => {
        fenced!($s, |conn, id| diesel::delete(rows!($t, id; $($f)*)).execute(conn).await)
            .map(|deleted| u32::try_from(deleted).unwrap_or(u32::MAX))
    };
    ($s:expr, $t:ident[$($f:tt)*]) => {
        delete!($s, count $t[$($f)*]).map(|_| ())
    };
}

/// The insert of one row of device `$id` into `$t`, with the given `column = value`s.
macro_rules! insert {
    ($id:expr, $t:ident[$($c:ident = $v:expr),+ $(,)?]) => {
        diesel::insert_into($t::table).values(($t::device_id.eq($id), $($t::$c.eq($v),)+))
    };
}

/// Upserts one row of this store's device, or every row of a batch in one transaction (see
/// the module docs for the syntax).
macro_rules! upsert {
    (@row $conn:ident, $id:ident, $t:ident[$($k:ident = $kv:expr),*]
        set [$($c:ident = $cv:expr),+ $(,)?] $(once [$($o:ident = $ov:expr),+ $(,)?])?
        $(then [$($u:ident = $uv:expr),+])?) => {
        insert!($id, $t[$($k = $kv,)* $($c = $cv,)+ $($($o = $ov),+)?])
            .on_conflict(($t::device_id, $($t::$k),*))
            .do_update()
            .set((
                $($t::$c.eq(diesel::upsert::excluded($t::$c)),)+
                $($($t::$u.eq($uv),)+)?
            ))
            .execute($conn)
            .await
    };
    ($s:expr, for $x:pat in $batch:expr => $($row:tt)+) => {{
        let batch = $batch;
        if batch.is_empty() {
            Ok(())
        } else {
            tx!($s, |conn, id| {
                for $x in batch {
                    upsert!(@row conn, id, $($row)+)?;
                }
            })
        }
    }};
    ($s:expr, $($row:tt)+) => {
        fenced!($s, |conn, id| upsert!(@row conn, id, $($row)+)).map(|_| ())
    };
}

/// Encodes a structured value for a blob column.
pub(super) fn to_blob<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Serialization(Box::new(e)))
}

/// Decodes a blob column written by [`to_blob`].
pub(super) fn from_blob<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Serialization(Box::new(e)))
}

/// Turns a stored key into the fixed 32 bytes the library expects.
pub(super) fn key32(bytes: &[u8]) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| StoreError::Validation(format!("expected 32 bytes, found {}", bytes.len())))
}

/// Turns a stored id (a BigInt column) back into the library's `u32`; `what` names it.
pub(super) fn id32(id: i64, what: &str) -> Result<u32> {
    u32::try_from(id).map_err(|_| StoreError::Validation(format!("{what} {id} out of range")))
}

/// Unix seconds now (row bookkeeping columns).
pub(super) fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

//! The tenant-wide opt-out list: numbers that get no campaign or sequence message, whichever
//! device or list they come from. The campaign engine asks [`opted_out`] before it queues
//! messages; people land on the list by the API, or by answering an opt-out keyword
//! ([`apply_keyword`], called by `Replies` for committed inbound texts).

use std::collections::HashSet;

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::model::OptOut;
use crate::broadcast::settings;
use crate::config::BroadcastSettings;
use crate::db::schema::opt_outs;
use crate::db::sql::{like_pattern, one_of};
use crate::db::{Db, DbError};
use crate::{db_run, delete_found};

/// Longest opt-out keyword (characters). Inbound texts longer than this are never compared, so
/// ChatSync loads no settings for ordinary messages.
pub const MAX_KEYWORD_CHARS: usize = 40;

/// Where an opt-out came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The person sent an opt-out keyword.
    Keyword,
    /// A user added it.
    Manual,
    /// A list import.
    Import,
}

impl Source {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Keyword => "keyword",
            Source::Manual => "manual",
            Source::Import => "import",
        }
    }
}

/// Which of `phones` (E.164 digits) are on the tenant's opt-out list.
pub async fn opted_out(
    db: &Db,
    tenant_id: i64,
    phones: &[String],
) -> Result<HashSet<String>, DbError> {
    Ok(crate::ids_found!(db, phones, String, |chunk| {
        opt_outs::table
            .filter(opt_outs::tenant_id.eq(tenant_id))
            .filter(one_of(opt_outs::phone, chunk.to_vec()))
            .select(opt_outs::phone)
    }))
}

/// Puts `phone` (E.164 digits) on the tenant's opt-out list. Idempotent: a number already on it
/// keeps its first entry. Returns the entry and whether it is new.
pub async fn add_opt_out(
    db: &Db,
    tenant_id: i64,
    phone: &str,
    source: Source,
    reason: Option<&str>,
) -> Result<(OptOut, bool), DbError> {
    let now = Utc::now().naive_utc();
    let result = db_run!(db, |conn| {
        let inserted = diesel::insert_into(opt_outs::table)
            .values((
                opt_outs::tenant_id.eq(tenant_id),
                opt_outs::phone.eq(phone),
                opt_outs::source.eq(source.as_str()),
                opt_outs::reason.eq(reason),
                opt_outs::created_at.eq(now),
            ))
            .on_conflict((opt_outs::tenant_id, opt_outs::phone))
            .do_nothing()
            .execute(conn)
            .await?;
        let entry: OptOut = opt_outs::table
            .filter(opt_outs::tenant_id.eq(tenant_id))
            .filter(opt_outs::phone.eq(phone))
            .select(OptOut::as_select())
            .first(conn)
            .await?;
        Ok::<_, DbError>((entry, inserted > 0))
    })?;
    // An opted-out lead gets no further sequence step.
    let stopped =
        crate::broadcast::sequence::store::stop_open(db, tenant_id, Some(phone), None, "opted out")
            .await?;
    if stopped > 0 {
        tracing::info!(
            tenant_id,
            stopped,
            "sequence enrolments stopped by an opt-out"
        );
    }
    Ok(result)
}

/// Takes `phone` off the tenant's opt-out list; [`DbError::NotFound`] when it is not on it.
pub async fn remove_opt_out(db: &Db, tenant_id: i64, phone: &str) -> Result<(), DbError> {
    delete_found!(
        db,
        opt_outs::table
            .filter(opt_outs::tenant_id.eq(tenant_id))
            .filter(opt_outs::phone.eq(phone))
    )
}

/// The tenant's opt-outs by id, optionally those whose phone contains `search`, after the
/// keyset cursor `after_id`, at most `limit`.
pub async fn list_opt_outs(
    db: &Db,
    tenant_id: i64,
    search: Option<&str>,
    after_id: Option<i64>,
    limit: i64,
) -> Result<Vec<OptOut>, DbError> {
    let pattern = search
        .map(|s| s.chars().filter(char::is_ascii_digit).collect::<String>())
        .filter(|s| !s.is_empty())
        .map(|s| like_pattern(&s));
    db_run!(db, |conn| {
        let mut query = opt_outs::table
            .filter(opt_outs::tenant_id.eq(tenant_id))
            .into_boxed();
        if let Some(pattern) = &pattern {
            query = query.filter(opt_outs::phone.like(pattern.clone()).escape('\\'));
        }
        if let Some(after) = after_id {
            query = query.filter(opt_outs::id.gt(after));
        }
        query
            .order(opt_outs::id.asc())
            .limit(limit)
            .select(OptOut::as_select())
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Whether an inbound text is short enough to be an opt-out keyword (no settings are loaded
/// for anything else).
pub fn may_be_keyword(text: &str) -> bool {
    let text = text.trim();
    !text.is_empty() && text.chars().count() <= MAX_KEYWORD_CHARS
}

/// Opts `phone` (a sender's E.164 digits) out when `text` is one of the tenant's opt-out
/// keywords. Returns whether the number was newly added.
pub async fn apply_keyword(
    db: &Db,
    defaults: &BroadcastSettings,
    tenant_id: i64,
    phone: &str,
    text: &str,
) -> Result<bool, DbError> {
    let effective = settings::effective(db, defaults, tenant_id).await?;
    if !effective.is_opt_out(text) {
        return Ok(false);
    }
    let keyword = text.trim().to_uppercase();
    let (_, added) = add_opt_out(db, tenant_id, phone, Source::Keyword, Some(&keyword)).await?;
    if added {
        tracing::info!(tenant_id, phone, keyword = %keyword, "opted out by keyword");
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_texts_are_compared() {
        assert!(may_be_keyword(" stop "));
        assert!(!may_be_keyword("   "));
        assert!(!may_be_keyword(&"x".repeat(MAX_KEYWORD_CHARS + 1)));
    }
}

//! Output shapes shared by several routes: users and tenants as the API shows them,
//! timestamps, and keyset pages.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, ErrorCode};
use crate::auth::model::{Role, Tenant, User};

/// A stored UTC timestamp as an RFC 3339 instant for JSON.
pub fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// Splits `limit + 1` rows read by id into the page and its `next_cursor` (the last id shown,
/// when more rows follow).
pub fn keyset_page<T>(
    mut rows: Vec<T>,
    limit: i64,
    id: impl Fn(&T) -> i64,
) -> (Vec<T>, Option<i64>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(id) } else { None };
    (rows, next)
}

/// The rows to skip for page `page` (from 1) of `per_page` rows: checked arithmetic, so a page
/// number whose offset passes `i64::MAX` is 400 `invalid_query` instead of an overflow (a
/// panic in debug builds, a negative offset the database refuses in release builds).
pub fn page_offset(page: i64, per_page: i64) -> Result<i64, ApiError> {
    page.checked_sub(1)
        .filter(|skipped| *skipped >= 0)
        .and_then(|skipped| skipped.checked_mul(per_page))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidQuery,
                format!("page must be 1 to {}", i64::MAX / per_page.max(1)),
            )
        })
}

/// A user as the API shows it (the profile, sign-in answers and the team list).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Id.
    pub id: i64,
    /// Email.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// Whether the account can sign in.
    pub is_active: bool,
    /// Last sign-in.
    pub last_login_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            role: user.role(),
            is_active: user.is_active,
            last_login_at: user.last_login_at.map(utc),
            created_at: utc(user.created_at),
        }
    }
}

/// A tenant as the API shows it (`/me`, `/tenant`).
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// IANA time zone for schedules and displayed times.
    pub time_zone: String,
}

impl From<&Tenant> for TenantView {
    fn from(tenant: &Tenant) -> Self {
        Self {
            id: tenant.id,
            name: tenant.name.clone(),
            time_zone: tenant.time_zone.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyset_pages_end_when_no_row_follows() {
        assert_eq!(keyset_page(vec![1, 2, 3], 2, |n| *n), (vec![1, 2], Some(2)));
        assert_eq!(keyset_page(vec![1, 2], 2, |n| *n), (vec![1, 2], None));
    }

    #[test]
    fn page_offsets_never_overflow() {
        assert_eq!(page_offset(1, 50).unwrap(), 0);
        assert_eq!(page_offset(3, 50).unwrap(), 100);
        let last = i64::MAX / 500 + 1;
        assert_eq!(page_offset(last, 500).unwrap(), (last - 1) * 500);
        for (page, per_page) in [(i64::MAX, 50), (last + 1, 500), (0, 50), (i64::MIN, 1)] {
            let err = page_offset(page, per_page).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidQuery, "{page}");
        }
    }
}

//! Output shapes shared by several routes: users as the API shows them, timestamps, and
//! keyset pages.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::model::{Role, User};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyset_pages_end_when_no_row_follows() {
        assert_eq!(keyset_page(vec![1, 2, 3], 2, |n| *n), (vec![1, 2], Some(2)));
        assert_eq!(keyset_page(vec![1, 2], 2, |n| *n), (vec![1, 2], None));
    }
}

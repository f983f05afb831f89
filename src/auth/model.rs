//! Rows and vocabulary of accounts: tenants, users and their roles, sessions, API tokens.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::schema::{api_tokens, sessions, tenants, users};

/// A business using wafleet; owns devices, leads, campaigns and chats.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = tenants)]
pub struct Tenant {
    /// Primary key.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// IANA time zone used for schedules and displayed times.
    pub time_zone: String,
    /// Creation time, UTC.
    pub created_at: NaiveDateTime,
    /// Last change, UTC.
    pub updated_at: NaiveDateTime,
}

/// Insert form for a tenant.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = tenants)]
pub struct NewTenant<'a> {
    /// Display name.
    pub name: &'a str,
    /// IANA time zone.
    pub time_zone: &'a str,
    /// Creation time, UTC.
    pub created_at: NaiveDateTime,
    /// Same as `created_at`.
    pub updated_at: NaiveDateTime,
}

/// Changes to a tenant (its owner edits the name or the time zone).
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = tenants)]
pub struct TenantPatch {
    /// New display name.
    pub name: Option<String>,
    /// New IANA time zone (checked by the caller).
    pub time_zone: Option<String>,
    /// Set by the store.
    pub updated_at: Option<NaiveDateTime>,
}

/// What a user may do, from most to least powerful. Ordered: `Admin > Owner > Member > Viewer`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read-only access to the tenant.
    Viewer,
    /// Team member: sees only assigned devices, can chat and view campaigns.
    Member,
    /// Runs the tenant: devices, team, settings.
    Owner,
    /// Platform operator: every tenant and the admin API.
    Admin,
}

impl Role {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Owner => "owner",
            Role::Admin => "admin",
        }
    }

    /// Parses a stored name; unknown names are `None`.
    pub fn parse(name: &str) -> Option<Role> {
        [Role::Viewer, Role::Member, Role::Owner, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == name)
    }
}

/// A user row (the password hash never leaves the server).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users)]
pub struct User {
    /// Primary key.
    pub id: i64,
    /// The tenant the user works in.
    pub tenant_id: Option<i64>,
    /// Login name, unique case-insensitively.
    pub email: String,
    /// Name shown in the dashboard.
    pub display_name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Stored role name (see [`Role`]).
    pub role: String,
    /// Inactive users cannot sign in and their sessions and tokens stop working.
    pub is_active: bool,
    /// Last successful login.
    pub last_login_at: Option<NaiveDateTime>,
    /// Creation time, UTC.
    pub created_at: NaiveDateTime,
    /// Last change, UTC.
    pub updated_at: NaiveDateTime,
    /// Set when someone else chose the password (first-start admin, an owner's reset): until
    /// the user sets their own, the API answers only `/me`, `/me/password` and sign-out.
    pub must_change_password: bool,
}

impl User {
    /// The parsed role; an unknown stored name (never written by this code) counts as viewer.
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Viewer)
    }
}

/// Insert form for a user.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    /// Tenant.
    pub tenant_id: Option<i64>,
    /// Login name (stored lower-cased).
    pub email: &'a str,
    /// Display name.
    pub display_name: &'a str,
    /// argon2id hash.
    pub password_hash: &'a str,
    /// Role name.
    pub role: &'a str,
    /// Active flag.
    pub is_active: bool,
    /// Creation time, UTC.
    pub created_at: NaiveDateTime,
    /// Same as `created_at`.
    pub updated_at: NaiveDateTime,
}

/// Changes to a user (owner edits a team member).
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserPatch {
    /// New display name.
    pub display_name: Option<String>,
    /// New role name.
    pub role: Option<String>,
    /// Enable or disable.
    pub is_active: Option<bool>,
    /// New password hash.
    pub password_hash: Option<String>,
    /// Whether the user must choose a new password at next sign-in.
    pub must_change_password: Option<bool>,
    /// Set by the store.
    pub updated_at: Option<NaiveDateTime>,
}

/// A browser session row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = sessions)]
pub struct Session {
    /// Primary key.
    pub id: i64,
    /// Whose session.
    pub user_id: i64,
    /// SHA-256 of the cookie value.
    pub token_hash: String,
    /// The token state-changing requests must echo in `X-CSRF-Token`.
    pub csrf_token: String,
    /// Client address at login.
    pub ip: Option<String>,
    /// Browser at login.
    pub user_agent: Option<String>,
    /// Login time.
    pub created_at: NaiveDateTime,
    /// Last request (updated at most once a minute).
    pub last_seen_at: NaiveDateTime,
    /// Absolute expiry.
    pub expires_at: NaiveDateTime,
}

/// Insert form for a session.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    /// Whose session.
    pub user_id: i64,
    /// SHA-256 of the cookie value.
    pub token_hash: &'a str,
    /// CSRF token.
    pub csrf_token: &'a str,
    /// Client address.
    pub ip: Option<&'a str>,
    /// Browser.
    pub user_agent: Option<&'a str>,
    /// Login time.
    pub created_at: NaiveDateTime,
    /// Same as `created_at`.
    pub last_seen_at: NaiveDateTime,
    /// Absolute expiry.
    pub expires_at: NaiveDateTime,
}

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// GET-style access.
    Read,
    /// Changes within the tenant, up to the creator's role.
    Write,
    /// The admin API (only for tokens created by admins).
    Admin,
}

impl Scope {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    /// Parses a comma-separated stored list, ignoring unknown names.
    pub fn parse_list(list: &str) -> Vec<Scope> {
        list.split(',')
            .filter_map(|s| match s.trim() {
                "read" => Some(Scope::Read),
                "write" => Some(Scope::Write),
                "admin" => Some(Scope::Admin),
                _ => None,
            })
            .collect()
    }
}

/// An API token row (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Identifiable)]
#[diesel(table_name = api_tokens)]
pub struct ApiToken {
    /// Primary key.
    pub id: i64,
    /// Tenant whose data it reaches.
    pub tenant_id: i64,
    /// Creator; the token acts with this user's role, capped by its scopes.
    pub user_id: i64,
    /// Label.
    pub name: String,
    /// SHA-256 of the token.
    pub token_hash: String,
    /// First characters of the token, to recognise it in lists.
    pub prefix: String,
    /// Comma-separated scopes.
    pub scopes: String,
    /// Last authenticated use.
    pub last_used_at: Option<NaiveDateTime>,
    /// Creation time.
    pub created_at: NaiveDateTime,
}

/// Insert form for an API token.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = api_tokens)]
pub struct NewApiToken<'a> {
    /// Tenant.
    pub tenant_id: i64,
    /// Creator.
    pub user_id: i64,
    /// Label.
    pub name: &'a str,
    /// SHA-256 of the token.
    pub token_hash: &'a str,
    /// Recognisable prefix.
    pub prefix: &'a str,
    /// Comma-separated scopes.
    pub scopes: &'a str,
    /// Creation time.
    pub created_at: NaiveDateTime,
}

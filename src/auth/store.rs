//! All SQL about tenants, users, sessions, API tokens and device assignments.
//!
//! Every function reaching another user's or token's row takes the tenant id and filters on it.

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

use super::model::{
    ApiToken, NewApiToken, NewSession, NewTenant, NewUser, Session, Tenant, TenantPatch, User,
    UserPatch,
};
use crate::db::schema::{api_tokens, device_assignments, devices, sessions, tenants, users};
use crate::db::{Db, DbError};
use crate::db_run;

/// Creates a tenant.
pub async fn insert_tenant(db: &Db, name: &str, time_zone: &str) -> Result<Tenant, DbError> {
    let now = Utc::now().naive_utc();
    let row = NewTenant {
        name,
        time_zone,
        created_at: now,
        updated_at: now,
    };
    db_run!(db, |conn| {
        diesel::insert_into(tenants::table)
            .values(&row)
            .returning(Tenant::as_returning())
            .get_result(conn)
            .await
            .map_err(DbError::from)
    })
}

/// A tenant by id.
pub async fn get_tenant(db: &Db, id: i64) -> Result<Tenant, DbError> {
    db_run!(db, |conn| {
        tenants::table
            .find(id)
            .select(Tenant::as_select())
            .first(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Changes a tenant's name or time zone and returns it.
pub async fn update_tenant(db: &Db, id: i64, mut patch: TenantPatch) -> Result<Tenant, DbError> {
    patch.updated_at = Some(Utc::now().naive_utc());
    db_run!(db, |conn| {
        diesel::update(tenants::table.find(id))
            .set(&patch)
            .returning(Tenant::as_returning())
            .get_result(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Replaces a tenant's feature settings (a JSON document `broadcast::settings` reads and
/// validates); [`DbError::NotFound`] when there is no such tenant.
pub async fn set_tenant_settings(db: &Db, tenant_id: i64, json: &str) -> Result<(), DbError> {
    let changed = db_run!(db, |conn| {
        diesel::update(tenants::table.find(tenant_id))
            .set(tenants::settings.eq(json))
            .execute(conn)
            .await
            .map_err(DbError::from)
    })?;
    DbError::found(changed)
}

/// Whether any user exists (first start creates the admin when not).
pub async fn any_user(db: &Db) -> Result<bool, DbError> {
    db_run!(db, |conn| {
        diesel::select(diesel::dsl::exists(users::table.select(users::id)))
            .get_result(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Creates a user; a taken email (any case) is a `Conflict`.
pub async fn insert_user(db: &Db, user: NewUser<'_>) -> Result<User, DbError> {
    db_run!(db, |conn| {
        diesel::insert_into(users::table)
            .values(&user)
            .returning(User::as_returning())
            .get_result(conn)
            .await
            .map_err(DbError::from)
    })
}

/// A user by email, case-insensitively.
pub async fn find_user_by_email(db: &Db, email: &str) -> Result<Option<User>, DbError> {
    let email = email.trim().to_lowercase();
    db_run!(db, |conn| {
        users::table
            .filter(users::email.eq(email))
            .select(User::as_select())
            .first(conn)
            .await
            .optional()
            .map_err(DbError::from)
    })
}

/// A user by id (any tenant: for authentication, not for tenant-facing routes).
pub async fn get_user(db: &Db, id: i64) -> Result<User, DbError> {
    db_run!(db, |conn| {
        users::table
            .find(id)
            .select(User::as_select())
            .first(conn)
            .await
            .map_err(DbError::from)
    })
}

/// A user of a tenant.
pub async fn get_tenant_user(db: &Db, tenant_id: i64, id: i64) -> Result<User, DbError> {
    db_run!(db, |conn| {
        users::table
            .filter(users::id.eq(id))
            .filter(users::tenant_id.eq(tenant_id))
            .select(User::as_select())
            .first(conn)
            .await
            .map_err(DbError::from)
    })
}

/// All users of a tenant, oldest first.
pub async fn list_tenant_users(db: &Db, tenant_id: i64) -> Result<Vec<User>, DbError> {
    db_run!(db, |conn| {
        users::table
            .filter(users::tenant_id.eq(tenant_id))
            .order(users::id.asc())
            .select(User::as_select())
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Changes a tenant's user and returns it.
pub async fn update_user(
    db: &Db,
    tenant_id: i64,
    id: i64,
    mut patch: UserPatch,
) -> Result<User, DbError> {
    patch.updated_at = Some(Utc::now().naive_utc());
    db_run!(db, |conn| {
        diesel::update(
            users::table
                .filter(users::id.eq(id))
                .filter(users::tenant_id.eq(tenant_id)),
        )
        .set(&patch)
        .returning(User::as_returning())
        .get_result(conn)
        .await
        .map_err(DbError::from)
    })
}

/// Deletes a tenant's user (sessions, tokens and assignments cascade).
pub async fn delete_user(db: &Db, tenant_id: i64, id: i64) -> Result<(), DbError> {
    let deleted = db_run!(db, |conn| {
        diesel::delete(
            users::table
                .filter(users::id.eq(id))
                .filter(users::tenant_id.eq(tenant_id)),
        )
        .execute(conn)
        .await
        .map_err(DbError::from)
    })?;
    if deleted == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// Records a successful login.
pub async fn touch_login(db: &Db, user_id: i64) -> Result<(), DbError> {
    let now = Utc::now().naive_utc();
    db_run!(db, |conn| {
        diesel::update(users::table.find(user_id))
            .set(users::last_login_at.eq(Some(now)))
            .execute(conn)
            .await
            .map(|_| ())
            .map_err(DbError::from)
    })
}

/// Stores a new session.
pub async fn insert_session(db: &Db, session: NewSession<'_>) -> Result<Session, DbError> {
    db_run!(db, |conn| {
        diesel::insert_into(sessions::table)
            .values(&session)
            .returning(Session::as_returning())
            .get_result(conn)
            .await
            .map_err(DbError::from)
    })
}

/// The live session with this token digest and its user; expired sessions are not returned.
pub async fn find_session(
    db: &Db,
    token_hash: &str,
    now: NaiveDateTime,
    idle_cutoff: NaiveDateTime,
) -> Result<Option<(Session, User)>, DbError> {
    db_run!(db, |conn| {
        sessions::table
            .inner_join(users::table)
            .filter(sessions::token_hash.eq(token_hash))
            .filter(sessions::expires_at.gt(now))
            .filter(sessions::last_seen_at.gt(idle_cutoff))
            .select((Session::as_select(), User::as_select()))
            .first(conn)
            .await
            .optional()
            .map_err(DbError::from)
    })
}

/// Moves a session's idle clock forward.
pub async fn touch_session(db: &Db, id: i64, now: NaiveDateTime) -> Result<(), DbError> {
    db_run!(db, |conn| {
        diesel::update(sessions::table.find(id))
            .set(sessions::last_seen_at.eq(now))
            .execute(conn)
            .await
            .map(|_| ())
            .map_err(DbError::from)
    })
}

/// Ends the session with this token digest, if any (sign-in rotation).
pub async fn delete_session_by_hash(db: &Db, token_hash: &str) -> Result<(), DbError> {
    db_run!(db, |conn| {
        diesel::delete(sessions::table.filter(sessions::token_hash.eq(token_hash)))
            .execute(conn)
            .await
            .map(|_| ())
            .map_err(DbError::from)
    })
}

/// Ends one session.
pub async fn delete_session(db: &Db, id: i64) -> Result<(), DbError> {
    db_run!(db, |conn| {
        diesel::delete(sessions::table.find(id))
            .execute(conn)
            .await
            .map(|_| ())
            .map_err(DbError::from)
    })
}

/// A user's live sessions (neither expired nor idle past `idle_cutoff`), most recently used
/// first.
pub async fn list_user_sessions(
    db: &Db,
    user_id: i64,
    now: NaiveDateTime,
    idle_cutoff: NaiveDateTime,
) -> Result<Vec<Session>, DbError> {
    db_run!(db, |conn| {
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::expires_at.gt(now))
            .filter(sessions::last_seen_at.gt(idle_cutoff))
            .order((sessions::last_seen_at.desc(), sessions::id.desc()))
            .select(Session::as_select())
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Ends one session of a user; [`DbError::NotFound`] when the user has no session `id`.
pub async fn delete_user_session(db: &Db, user_id: i64, id: i64) -> Result<(), DbError> {
    let deleted = db_run!(db, |conn| {
        diesel::delete(
            sessions::table
                .filter(sessions::id.eq(id))
                .filter(sessions::user_id.eq(user_id)),
        )
        .execute(conn)
        .await
        .map_err(DbError::from)
    })?;
    DbError::found(deleted)
}

/// Ends every session of a user (password change, deactivation).
pub async fn delete_user_sessions(db: &Db, user_id: i64) -> Result<usize, DbError> {
    db_run!(db, |conn| {
        diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id)))
            .execute(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Deletes sessions past their absolute or idle expiry; returns how many.
pub async fn purge_expired_sessions(
    db: &Db,
    now: NaiveDateTime,
    idle_cutoff: NaiveDateTime,
) -> Result<usize, DbError> {
    db_run!(db, |conn| {
        diesel::delete(
            sessions::table.filter(
                sessions::expires_at
                    .le(now)
                    .or(sessions::last_seen_at.le(idle_cutoff)),
            ),
        )
        .execute(conn)
        .await
        .map_err(DbError::from)
    })
}

/// Stores a new API token.
pub async fn insert_token(db: &Db, token: NewApiToken<'_>) -> Result<ApiToken, DbError> {
    db_run!(db, |conn| {
        diesel::insert_into(api_tokens::table)
            .values(&token)
            .returning(ApiToken::as_returning())
            .get_result(conn)
            .await
            .map_err(DbError::from)
    })
}

/// The token with this digest and its creator.
pub async fn find_token(db: &Db, token_hash: &str) -> Result<Option<(ApiToken, User)>, DbError> {
    db_run!(db, |conn| {
        api_tokens::table
            .inner_join(users::table)
            .filter(api_tokens::token_hash.eq(token_hash))
            .select((ApiToken::as_select(), User::as_select()))
            .first(conn)
            .await
            .optional()
            .map_err(DbError::from)
    })
}

/// Records a token's use (callers do it at most once a minute per token).
pub async fn touch_token(db: &Db, id: i64, now: NaiveDateTime) -> Result<(), DbError> {
    db_run!(db, |conn| {
        diesel::update(api_tokens::table.find(id))
            .set(api_tokens::last_used_at.eq(Some(now)))
            .execute(conn)
            .await
            .map(|_| ())
            .map_err(DbError::from)
    })
}

/// A tenant's tokens, newest first.
pub async fn list_tokens(db: &Db, tenant_id: i64) -> Result<Vec<ApiToken>, DbError> {
    db_run!(db, |conn| {
        api_tokens::table
            .filter(api_tokens::tenant_id.eq(tenant_id))
            .order(api_tokens::id.desc())
            .select(ApiToken::as_select())
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Revokes (deletes) a tenant's token; it stops working at once.
pub async fn delete_token(db: &Db, tenant_id: i64, id: i64) -> Result<ApiToken, DbError> {
    db_run!(db, |conn| {
        diesel::delete(
            api_tokens::table
                .filter(api_tokens::id.eq(id))
                .filter(api_tokens::tenant_id.eq(tenant_id)),
        )
        .returning(ApiToken::as_returning())
        .get_result(conn)
        .await
        .map_err(DbError::from)
    })
}

/// Ids of the devices assigned to a user.
pub async fn assigned_device_ids(db: &Db, user_id: i64) -> Result<Vec<i64>, DbError> {
    db_run!(db, |conn| {
        device_assignments::table
            .filter(device_assignments::user_id.eq(user_id))
            .select(device_assignments::device_id)
            .order(device_assignments::device_id.asc())
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Id, name and status of the devices assigned to a user, by id.
pub async fn assigned_devices(
    db: &Db,
    user_id: i64,
) -> Result<Vec<(i64, String, String)>, DbError> {
    db_run!(db, |conn| {
        device_assignments::table
            .inner_join(devices::table)
            .filter(device_assignments::user_id.eq(user_id))
            .select((devices::id, devices::name, devices::status))
            .order(devices::id.asc())
            .load(conn)
            .await
            .map_err(DbError::from)
    })
}

/// Replaces a user's device assignments with `device_ids`, all of which must belong to the
/// tenant (otherwise `NotFound` and nothing changes).
pub async fn set_assigned_devices(
    db: &Db,
    tenant_id: i64,
    user_id: i64,
    device_ids: &[i64],
) -> Result<(), DbError> {
    let mut wanted = device_ids.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    db_run!(db, |conn| {
        conn.transaction::<_, DbError, _>(async |conn| {
            // Starts with a write so SQLite takes its write lock first (see db module docs).
            diesel::delete(
                device_assignments::table.filter(device_assignments::user_id.eq(user_id)),
            )
            .execute(conn)
            .await?;
            let owned: i64 = devices::table
                .filter(devices::tenant_id.eq(tenant_id))
                .filter(devices::id.eq_any(wanted.clone()))
                .count()
                .get_result(conn)
                .await?;
            if owned != wanted.len() as i64 {
                return Err(DbError::NotFound);
            }
            // One row at a time: diesel-async has no batch insert for SQLite; lists are short.
            for device_id in &wanted {
                diesel::insert_into(device_assignments::table)
                    .values((
                        device_assignments::user_id.eq(user_id),
                        device_assignments::device_id.eq(*device_id),
                    ))
                    .execute(conn)
                    .await?;
            }
            Ok(())
        })
        .await
    })
}

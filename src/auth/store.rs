//! All SQL about tenants and users.

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::model::{NewTenant, Tenant};
use crate::db::schema::tenants;
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

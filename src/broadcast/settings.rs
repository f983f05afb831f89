//! A tenant's broadcast settings: its overrides (stored as JSON in `tenants.settings`) over the
//! configured `[broadcast]` defaults.

use chrono_tz::Tz;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::pacing::{Pacing, PacingOverride};
use crate::auth::store as accounts;
use crate::config::BroadcastSettings;
use crate::db::schema::tenants;
use crate::db::{Db, DbError};
use crate::db_run;
use crate::phone;

/// What a tenant changed from the defaults; absent fields follow the configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantBroadcast {
    /// ISO 3166 alpha-2 country for numbers without a country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_country: Option<String>,
    /// Inbound words that opt the sender out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_out_keywords: Option<Vec<String>>,
    /// Pacing overrides for every campaign of the tenant.
    #[serde(default)]
    pub pacing: PacingOverride,
}

/// The settings in force for a tenant.
#[derive(Debug, Clone)]
pub struct Effective {
    /// Country for numbers without a country code.
    pub country: phonenumber::country::Id,
    /// Opt-out words, upper-cased.
    pub opt_out_keywords: Vec<String>,
    /// Pacing before campaign overrides.
    pub pacing: Pacing,
    /// The tenant's time zone (quiet hours, schedules).
    pub time_zone: Tz,
}

impl TenantBroadcast {
    /// Applies these overrides to the configured defaults, checking every value.
    pub fn effective(
        &self,
        defaults: &BroadcastSettings,
        time_zone: &str,
    ) -> Result<Effective, String> {
        let country_name = self
            .default_country
            .as_deref()
            .unwrap_or(&defaults.default_country);
        let country = phone::country_code(country_name)
            .ok_or_else(|| format!("default_country: unknown country {country_name:?}"))?;
        let pacing = defaults.pacing.with(&self.pacing);
        defaults.limits.check(&pacing)?;
        let keywords = self
            .opt_out_keywords
            .as_ref()
            .unwrap_or(&defaults.opt_out_keywords);
        if keywords.iter().any(|k| k.trim().is_empty()) {
            return Err("opt_out_keywords: a keyword must not be empty".into());
        }
        Ok(Effective {
            country,
            opt_out_keywords: keywords.iter().map(|k| k.trim().to_uppercase()).collect(),
            pacing,
            time_zone: time_zone.parse().unwrap_or(chrono_tz::UTC),
        })
    }
}

impl Effective {
    /// Is `text` one of the opt-out keywords?
    pub fn is_opt_out(&self, text: &str) -> bool {
        let text = text.trim().to_uppercase();
        self.opt_out_keywords.contains(&text)
    }
}

/// A tenant's stored overrides and its time zone.
pub async fn load(db: &Db, tenant_id: i64) -> Result<(TenantBroadcast, String), DbError> {
    let (json, zone) = db_run!(db, |conn| {
        tenants::table
            .find(tenant_id)
            .select((tenants::settings, tenants::time_zone))
            .first::<(String, String)>(conn)
            .await
            .map_err(DbError::from)
    })?;
    // A row written by this code always parses; anything else means "defaults".
    let stored = serde_json::from_str(&json).unwrap_or_else(|err| {
        tracing::warn!(tenant_id, error = %err, "tenant settings unreadable, using defaults");
        TenantBroadcast::default()
    });
    Ok((stored, zone))
}

/// The settings in force for a tenant (stored values that no longer pass the configured limits
/// fall back to the defaults, with a warning).
pub async fn effective(
    db: &Db,
    defaults: &BroadcastSettings,
    tenant_id: i64,
) -> Result<Effective, DbError> {
    let (stored, zone) = load(db, tenant_id).await?;
    match stored.effective(defaults, &zone) {
        Ok(effective) => Ok(effective),
        Err(err) => {
            tracing::warn!(tenant_id, error = %err, "tenant broadcast settings out of bounds, using defaults");
            TenantBroadcast::default()
                .effective(defaults, &zone)
                .map_err(|e| DbError::Query(diesel::result::Error::SerializationError(e.into())))
        }
    }
}

/// Stores a tenant's overrides (validate them with [`TenantBroadcast::effective`] first).
pub async fn save(db: &Db, tenant_id: i64, stored: &TenantBroadcast) -> Result<(), DbError> {
    let json = serde_json::to_string(stored)
        .map_err(|e| DbError::Query(diesel::result::Error::SerializationError(Box::new(e))))?;
    accounts::set_tenant_settings(db, tenant_id, &json).await
}

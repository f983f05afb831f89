//! Leads: the search and adding one to a list; a lead as the API shows it, and the checks of a
//! lead's fields that adding and changing share.

use std::collections::BTreeMap;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::broadcast::leads::model::{
    decode_tags, normalize_status, normalize_tags, parse_fields, Lead, LeadInput,
};
use crate::broadcast::leads::store::{self, LeadFilter};
use crate::db::DbError;
use crate::web::auth::{require, Auth};
use crate::web::input::tenant_phone;
use crate::web::views::{keyset_page, utc};
use crate::web::{ApiError, AppState, ErrorCode};

/// Largest page of the lead search.
const MAX_LIMIT: i64 = 500;
/// Longest name of a lead.
const MAX_NAME_CHARS: usize = 200;

/// The message of 409 `duplicate_phone`.
pub const DUPLICATE_PHONE: &str = "this phone is already in the list";

/// A lead as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeadView {
    /// Id.
    pub id: i64,
    /// Its list.
    pub list_id: i64,
    /// Name (may be empty).
    pub name: String,
    /// E.164 digits without the plus.
    pub phone: String,
    /// Niche.
    pub niche: Option<String>,
    /// Lower-case tags.
    pub tags: Vec<String>,
    /// Lower-case status word.
    pub status: String,
    /// Custom fields (CSV columns beyond the known ones).
    pub fields: BTreeMap<String, String>,
    /// The lead's own device, once chosen.
    pub device_id: Option<i64>,
    /// Creation time.
    pub created_at: chrono::DateTime<Utc>,
    /// Last change.
    pub updated_at: chrono::DateTime<Utc>,
}

impl From<&Lead> for LeadView {
    fn from(lead: &Lead) -> Self {
        Self {
            id: lead.id,
            list_id: lead.list_id,
            name: lead.name.clone(),
            phone: lead.phone.clone(),
            niche: lead.niche.clone(),
            tags: decode_tags(&lead.tags),
            status: lead.status.clone(),
            fields: parse_fields(&lead.fields),
            device_id: lead.device_id,
            created_at: utc(lead.created_at),
            updated_at: utc(lead.updated_at),
        }
    }
}

/// Which leads to find: the query of `GET /leads`, the arguments of the `find_leads` tool.
#[derive(Debug, Default, Deserialize, IntoParams, schemars::JsonSchema)]
pub struct LeadQuery {
    /// Only this list.
    pub list_id: Option<i64>,
    /// Substring of the name or phone.
    pub q: Option<String>,
    /// Only leads with this tag.
    pub tag: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Only this niche (case-insensitive).
    pub niche: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<i64>,
    /// Leads per page (1–500, default 50).
    pub limit: Option<i64>,
}

/// A page of leads, by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeadPage {
    /// The leads.
    pub items: Vec<LeadView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<i64>,
}

/// A new lead: the body of `POST /leads`, the arguments of the `create_lead` tool.
#[derive(Debug, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLeadRequest {
    /// The list to add to.
    pub list_id: i64,
    /// Phone number in any common form; without a country code it is read with the tenant's
    /// default country.
    pub phone: String,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Niche.
    #[serde(default)]
    pub niche: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Status word (default `prospect`).
    #[serde(default)]
    pub status: Option<String>,
    /// Custom fields.
    #[serde(default)]
    pub fields: Option<BTreeMap<String, String>>,
}

/// 422 `invalid_lead` with the reason.
fn invalid_lead(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidLead, message)
}

/// A lead name: trimmed, at most 200 characters, or 422 `invalid_lead`.
pub fn lead_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid_lead(format!(
            "name must be at most {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(name.to_string())
}

/// Normalized tags, or 422 `invalid_lead`.
pub fn lead_tags(tags: &[String]) -> Result<Vec<String>, ApiError> {
    normalize_tags(tags.iter().map(String::as_str)).map_err(invalid_lead)
}

/// A normalized status, or 422 `invalid_lead`.
pub fn lead_status(raw: &str) -> Result<String, ApiError> {
    normalize_status(raw).map_err(invalid_lead)
}

/// Custom fields without empty values.
pub fn lead_fields(fields: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    fields
        .iter()
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .collect()
}

/// Leads of the tenant, filtered, by id with keyset pagination (`cursor` = `next_cursor`).
pub async fn search(
    state: &AppState,
    caller: &Auth<require::Viewer>,
    query: &LeadQuery,
) -> Result<LeadPage, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_LIMIT);
    let blank = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let filter = LeadFilter {
        list_id: query.list_id,
        search: blank(&query.q),
        tag: blank(&query.tag).map(|t| t.to_lowercase()),
        status: blank(&query.status).map(|s| s.to_lowercase()),
        niche: blank(&query.niche),
        after_id: query.cursor,
    };
    let rows = store::search_leads(&state.db, caller.tenant_id, &filter, limit + 1).await?;
    let (rows, next_cursor) = keyset_page(rows, limit, |l| l.id);
    Ok(LeadPage {
        items: rows.iter().map(LeadView::from).collect(),
        next_cursor,
    })
}

/// Adds a lead to a list of the tenant (404 for another's); its phone already in the list is
/// 409 `duplicate_phone`. Announced as `LEAD_CREATED` with `via` (`api`, `mcp`).
pub async fn create(
    state: &AppState,
    caller: &Auth<require::Member>,
    body: &CreateLeadRequest,
    via: &str,
) -> Result<LeadView, ApiError> {
    let (list, _) = store::get_list(&state.db, caller.tenant_id, body.list_id)
        .await
        .map_err(|err| match err {
            DbError::NotFound => ApiError::not_found("lead list"),
            other => other.into(),
        })?;
    let input = LeadInput {
        name: lead_name(body.name.as_deref().unwrap_or_default())?,
        phone: tenant_phone(state, caller.tenant_id, &body.phone).await?,
        niche: body
            .niche
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string),
        tags: lead_tags(body.tags.as_deref().unwrap_or_default())?,
        status: body.status.as_deref().map(lead_status).transpose()?,
        fields: lead_fields(&body.fields.clone().unwrap_or_default()),
    };
    let row = input.into_new(caller.tenant_id, list.id, Utc::now().naive_utc());
    let lead = store::insert_lead(&state.db, &row)
        .await
        .map_err(ApiError::on_conflict(
            ErrorCode::DuplicatePhone,
            DUPLICATE_PHONE,
        ))?;
    crate::broadcast::events::lead_created(&state.hub, &lead, via);
    Ok(LeadView::from(&lead))
}

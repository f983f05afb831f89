//! Inbound lead webhooks: other systems (forms, CRMs, ad platforms) push leads into a tenant
//! with a signed `POST /api/v1/webhooks/leads`, no session needed.
//!
//! Flow of one delivery, in this order (each step answers before the next one runs):
//! 1. The tenant's signing secret is looked up ([`get_secret`]); a tenant without one, or one
//!    that does not exist, is a bad signature (the answer never says which tenants exist).
//! 2. The signature, `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>`, is checked
//!    in constant time ([`verify_signature`]); then the timestamp must lie within
//!    [`WINDOW_SECS`] of our clock ([`check_timestamp`]). Both before anything is parsed.
//! 3. The body is validated field by field ([`WebhookLead::parse`]): every error names the field.
//! 4. The signature is recorded in `webhook_deliveries` ([`record_delivery`]); the unique
//!    `(tenant_id, signature)` turns a second delivery of the same request into
//!    [`WebhookError::Replayed`]. Rows are pruned once no replay of them can pass the window.
//! 5. The lead is created in, or updated in, its list ([`upsert_lead`]); the list is created on
//!    first use. Every update moves `updated_at`, which is how the sequence engine notices new
//!    trigger tags.
//!
//! The secret is stored as is (an HMAC needs it), is shown once when rotated, and is never
//! logged; neither is a signature.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use utoipa::ToSchema;

use super::leads::model::{
    decode_tags, encode_tags, fields_json, normalize_status, normalize_tags, parse_fields, Lead,
    LeadInput, LeadList, LeadPatch,
};
use super::leads::store as lead_store;
use crate::db::schema::{lead_lists, leads, webhook_deliveries, webhook_secrets};
use crate::db::{Db, DbError};
use crate::db_run;
use crate::phone;

/// How far (seconds) a delivery's timestamp may be from our clock, either way.
pub const WINDOW_SECS: i64 = 300;
/// Largest body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The list leads go to when the body names none.
pub const DEFAULT_LIST: &str = "Webhook";
/// Random bytes in a signing secret.
pub const SECRET_BYTES: usize = 32;
/// Header with the tenant id.
pub const TENANT_HEADER: &str = "x-wafleet-tenant";
/// Header with the Unix time (seconds) the sender signed at.
pub const TIMESTAMP_HEADER: &str = "x-wafleet-timestamp";
/// Header with `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "x-wafleet-signature";
/// Prefix of the signature header's value.
const SIGNATURE_PREFIX: &str = "sha256=";
/// Longest lead or list name, in characters (as the API's own routes allow).
const MAX_NAME_CHARS: usize = 200;
/// Attempts of an upsert that lost a race with another writer of the same list or phone.
const UPSERT_ATTEMPTS: usize = 3;

type HmacSha256 = Hmac<Sha256>;

/// Why a delivery was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Missing or malformed headers, unknown tenant, tenant without a secret, or a signature
    /// that does not match.
    #[error("missing or invalid signature")]
    BadSignature,
    /// The signed timestamp is outside the window.
    #[error("the timestamp is more than {WINDOW_SECS} seconds away from the server's clock")]
    StaleTimestamp,
    /// This exact request (same signature) was already delivered within the window.
    #[error("this request was already delivered")]
    Replayed,
    /// The body is not a valid lead; the message starts with the field's name.
    #[error("{0}")]
    InvalidLead(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A tenant's signing secret.
#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_secrets)]
pub struct WebhookSecret {
    /// The tenant.
    pub tenant_id: i64,
    /// The secret: the HMAC key, as these characters' UTF-8 bytes.
    pub secret: String,
    /// When it was made (the last rotation).
    pub created_at: NaiveDateTime,
}

impl std::fmt::Debug for WebhookSecret {
    /// Never prints the secret itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSecret")
            .field("tenant_id", &self.tenant_id)
            .field("secret", &"<redacted>")
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// The body of a delivery, validated (the phone not normalized yet: that needs the tenant's
/// country).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, ToSchema)]
pub struct WebhookLead {
    /// Phone number in any common form; without a country code it is read with the tenant's
    /// default country.
    pub phone: String,
    /// Name; replaces the stored one.
    #[serde(default)]
    pub name: Option<String>,
    /// Name of the lead list (default `Webhook`, created when absent).
    #[serde(default)]
    pub list: Option<String>,
    /// Niche; replaces the stored one.
    #[serde(default)]
    pub niche: Option<String>,
    /// Status word; replaces the stored one (new leads default to `prospect`).
    #[serde(default)]
    pub status: Option<String>,
    /// Tags added to the lead's tags (a sequence's trigger tag enrols it).
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Custom fields, merged key by key into the stored ones (numbers and booleans are kept as
    /// text).
    #[serde(default)]
    pub fields: Option<BTreeMap<String, String>>,
}

/// The fields a body may carry.
const KNOWN_FIELDS: [&str; 7] = ["phone", "name", "list", "niche", "status", "tags", "fields"];

impl WebhookLead {
    /// Reads and checks a raw body; the error names the offending field.
    ///
    /// Parsed by hand from a JSON value rather than by serde's derive, whose messages point at a
    /// line and column instead of naming the field.
    pub fn parse(body: &[u8]) -> Result<WebhookLead, WebhookError> {
        let invalid = WebhookError::InvalidLead;
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| invalid(format!("body: not valid JSON ({e})")))?;
        let Value::Object(map) = value else {
            return Err(invalid("body: must be a JSON object".into()));
        };
        if let Some(unknown) = map.keys().find(|k| !KNOWN_FIELDS.contains(&k.as_str())) {
            return Err(invalid(format!(
                "{unknown}: unknown field (known: {})",
                KNOWN_FIELDS.join(", ")
            )));
        }
        let text = |field: &str| -> Result<Option<String>, WebhookError> {
            match map.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => {
                    let s = s.trim();
                    Ok((!s.is_empty()).then(|| s.to_string()))
                }
                Some(_) => Err(invalid(format!("{field}: must be a string"))),
            }
        };
        let phone = match map.get("phone") {
            None | Some(Value::Null) => return Err(invalid("phone: is required".into())),
            // A number is what spreadsheets and some form tools send for a phone.
            Some(Value::Number(n)) if n.is_u64() => n.to_string(),
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(Value::String(_)) => return Err(invalid("phone: is empty".into())),
            Some(_) => return Err(invalid("phone: must be a string".into())),
        };
        let name = text("name")?;
        if let Some(name) = &name {
            check_length("name", name)?;
        }
        let list = text("list")?;
        if let Some(list) = &list {
            check_length("list", list)?;
        }
        let niche = text("niche")?;
        let status = text("status")?
            .map(|s| normalize_status(&s).map_err(|e| invalid(format!("status: {e}"))))
            .transpose()?;
        let tags = match map.get("tags") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => {
                let mut tags = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(s) => tags.push(s.as_str()),
                        _ => return Err(invalid("tags: must be a list of strings".into())),
                    }
                }
                let tags = normalize_tags(tags).map_err(|e| invalid(format!("tags: {e}")))?;
                Some(tags)
            }
            Some(_) => return Err(invalid("tags: must be a list of strings".into())),
        };
        let fields = match map.get("fields") {
            None | Some(Value::Null) => None,
            Some(Value::Object(entries)) => {
                let mut fields = BTreeMap::new();
                for (key, value) in entries {
                    let value = match value {
                        Value::Null => continue,
                        Value::String(s) => s.trim().to_string(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => {
                            return Err(invalid(format!(
                                "fields.{key}: must be a string, number or boolean"
                            )))
                        }
                    };
                    let key = key.trim();
                    if !key.is_empty() && !value.is_empty() {
                        fields.insert(key.to_string(), value);
                    }
                }
                Some(fields)
            }
            Some(_) => return Err(invalid("fields: must be an object".into())),
        };
        Ok(WebhookLead {
            phone,
            name,
            list,
            niche,
            status,
            tags,
            fields,
        })
    }
}

/// `Err` naming `field` when `value` is longer than [`MAX_NAME_CHARS`].
fn check_length(field: &str, value: &str) -> Result<(), WebhookError> {
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(WebhookError::InvalidLead(format!(
            "{field}: must be at most {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(())
}

/// A new signing secret: [`SECRET_BYTES`] random bytes as 64 lower-case hex characters.
pub fn new_secret() -> String {
    crate::auth::secret::random_hex(SECRET_BYTES)
}

/// The signature of a delivery, as the header carries it: `sha256=<hex>` of
/// HMAC-SHA256(secret, `"<timestamp>.<body>"`).
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    format!(
        "{SIGNATURE_PREFIX}{}",
        hex::encode(mac_of(secret, timestamp, body).finalize().into_bytes())
    )
}

/// The HMAC over `"<timestamp>.<body>"`, ready to finalize or verify.
fn mac_of(secret: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (long ones are hashed first), so this cannot fail; the
    // fallback only keeps the code free of a panic path.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| HmacSha256::new(&Default::default()));
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks the signature header against the secret, in constant time. The header is
/// `sha256=<hex>` (hex in any case).
pub fn verify_signature(
    secret: &str,
    timestamp: &str,
    body: &[u8],
    header: &str,
) -> Result<(), WebhookError> {
    let hex_part = header
        .trim()
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or(WebhookError::BadSignature)?;
    let expected = hex::decode(hex_part).map_err(|_| WebhookError::BadSignature)?;
    mac_of(secret, timestamp, body)
        .verify_slice(&expected)
        .map_err(|_| WebhookError::BadSignature)
}

/// The timestamp header as Unix seconds, checked against `now`: unreadable is a bad signature,
/// more than [`WINDOW_SECS`] away (either way) is stale.
pub fn check_timestamp(header: &str, now: DateTime<Utc>) -> Result<i64, WebhookError> {
    let ts: i64 = header
        .trim()
        .parse()
        .map_err(|_| WebhookError::BadSignature)?;
    if now.timestamp().abs_diff(ts) > WINDOW_SECS.unsigned_abs() {
        return Err(WebhookError::StaleTimestamp);
    }
    Ok(ts)
}

/// The tenant's secret, if it made one.
pub async fn get_secret(db: &Db, tenant_id: i64) -> Result<Option<WebhookSecret>, DbError> {
    db_run!(db, |conn| {
        webhook_secrets::table
            .find(tenant_id)
            .select(WebhookSecret::as_select())
            .first(conn)
            .await
            .optional()
            .map_err(DbError::from)
    })
}

/// Makes a new secret for the tenant, replacing any previous one (which stops working at once).
pub async fn rotate_secret(db: &Db, tenant_id: i64) -> Result<WebhookSecret, DbError> {
    let row = WebhookSecret {
        tenant_id,
        secret: new_secret(),
        created_at: Utc::now().naive_utc(),
    };
    let values = (
        webhook_secrets::tenant_id.eq(row.tenant_id),
        webhook_secrets::secret.eq(row.secret.clone()),
        webhook_secrets::created_at.eq(row.created_at),
    );
    db_run!(db, |conn| {
        diesel::insert_into(webhook_secrets::table)
            .values(values.clone())
            .on_conflict(webhook_secrets::tenant_id)
            .do_update()
            .set((
                webhook_secrets::secret.eq(row.secret.clone()),
                webhook_secrets::created_at.eq(row.created_at),
            ))
            .execute(conn)
            .await
            .map_err(DbError::from)
    })?;
    Ok(row)
}

/// Records a delivery's signature; [`WebhookError::Replayed`] when the tenant already received
/// it. Prunes the rows no replay can match any more first.
///
/// A delivery signed at `t` passes the window until `t + W`, and was received no earlier than
/// `t - W`; its row must therefore outlive its reception by `2 W`, not `W`.
pub async fn record_delivery(
    db: &Db,
    tenant_id: i64,
    signature: &str,
    now: NaiveDateTime,
) -> Result<(), WebhookError> {
    let horizon = now - TimeDelta::seconds(2 * WINDOW_SECS);
    // Hex in any case is accepted, so the stored form is lower case: one request, one row.
    let signature = signature.trim().to_ascii_lowercase();
    let inserted = db_run!(db, |conn| {
        diesel::delete(
            webhook_deliveries::table.filter(webhook_deliveries::received_at.lt(horizon)),
        )
        .execute(conn)
        .await
        .map_err(DbError::from)?;
        diesel::insert_into(webhook_deliveries::table)
            .values((
                webhook_deliveries::tenant_id.eq(tenant_id),
                webhook_deliveries::signature.eq(&signature),
                webhook_deliveries::received_at.eq(now),
            ))
            .execute(conn)
            .await
            .map_err(DbError::from)
    });
    match inserted {
        Ok(_) => Ok(()),
        Err(DbError::Conflict(_)) => Err(WebhookError::Replayed),
        Err(err) => Err(err.into()),
    }
}

/// Forgets a recorded delivery whose lead could not be written, so the sender may retry it.
pub async fn forget_delivery(db: &Db, tenant_id: i64, signature: &str) -> Result<(), DbError> {
    let signature = signature.trim().to_ascii_lowercase();
    db_run!(db, |conn| {
        diesel::delete(
            webhook_deliveries::table
                .filter(webhook_deliveries::tenant_id.eq(tenant_id))
                .filter(webhook_deliveries::signature.eq(&signature)),
        )
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(DbError::from)
    })
}

/// What [`upsert_lead`] did.
#[derive(Debug, Clone)]
pub struct Upserted {
    /// The lead as stored now.
    pub lead: Lead,
    /// Its list.
    pub list: LeadList,
    /// `true` when the lead is new to the list.
    pub created: bool,
}

/// Writes a delivery's lead: finds its list by name (creating it), then creates the lead or
/// updates the one with the same phone in that list. `phone` is already normalized.
///
/// An update replaces name, niche and status when given, merges custom fields key by key and
/// adds the tags to the stored ones; `updated_at` always moves forward, even within one clock
/// tick, because the sequence engine finds newly tagged leads by it.
pub async fn upsert_lead(
    db: &Db,
    tenant_id: i64,
    lead: &WebhookLead,
    phone: &str,
) -> Result<Upserted, DbError> {
    let list_name = lead.list.as_deref().unwrap_or(DEFAULT_LIST);
    let mut attempt = 1;
    loop {
        match try_upsert(db, tenant_id, list_name, lead, phone).await {
            // Another delivery created the same list or lead between our read and our insert:
            // read again, now finding it.
            Err(DbError::Conflict(what)) if attempt < UPSERT_ATTEMPTS => {
                tracing::debug!(tenant_id, attempt, conflict = %what, "webhook upsert raced a writer, retrying");
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

/// One attempt of [`upsert_lead`].
async fn try_upsert(
    db: &Db,
    tenant_id: i64,
    list_name: &str,
    input: &WebhookLead,
    phone: &str,
) -> Result<Upserted, DbError> {
    let list = match find_list(db, tenant_id, list_name).await? {
        Some(list) => list,
        None => lead_store::insert_list(db, tenant_id, list_name).await?,
    };
    // At the microsecond precision both backends store.
    let now = crate::db::to_micros(Utc::now().naive_utc());
    match find_lead(db, list.id, phone).await? {
        None => {
            let row = LeadInput {
                name: input.name.clone().unwrap_or_default(),
                phone: phone.to_string(),
                niche: input.niche.clone(),
                tags: input.tags.clone().unwrap_or_default(),
                status: input.status.clone(),
                fields: input.fields.clone().unwrap_or_default(),
            }
            .into_new(tenant_id, list.id, now);
            let lead = lead_store::insert_lead(db, &row).await?;
            Ok(Upserted {
                lead,
                list,
                created: true,
            })
        }
        Some(existing) => {
            let patch = patch_for(&existing, input, now);
            let lead = lead_store::update_lead(db, tenant_id, existing.id, &patch).await?;
            Ok(Upserted {
                lead,
                list,
                created: false,
            })
        }
    }
}

/// The change a delivery makes to a lead it found (pure).
pub fn patch_for(existing: &Lead, input: &WebhookLead, now: NaiveDateTime) -> LeadPatch {
    let tags = input.tags.as_ref().map(|new| {
        let mut tags = decode_tags(&existing.tags);
        for tag in new {
            if !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
        encode_tags(&tags)
    });
    let fields = input.fields.as_ref().map(|new| {
        let mut fields = parse_fields(&existing.fields);
        fields.extend(new.clone());
        fields_json(&fields)
    });
    // Strictly later than the stored value: stored times have microsecond precision, so a
    // second update within the same microsecond still moves it.
    let updated_at = if now > existing.updated_at {
        now
    } else {
        existing.updated_at + TimeDelta::microseconds(1)
    };
    LeadPatch {
        name: input.name.clone(),
        niche: input.niche.clone().map(Some),
        tags,
        status: input.status.clone(),
        fields,
        updated_at: Some(updated_at),
        ..LeadPatch::default()
    }
}

/// Normalizes a delivery's phone with the tenant's default country; the error names the field.
pub fn normalize_phone(
    raw: &str,
    country: phonenumber::country::Id,
) -> Result<String, WebhookError> {
    phone::normalize(raw, country).map_err(|e| WebhookError::InvalidLead(format!("phone: {e}")))
}

/// The tenant's list called `name` (exact match), if any.
async fn find_list(db: &Db, tenant_id: i64, name: &str) -> Result<Option<LeadList>, DbError> {
    db_run!(db, |conn| {
        lead_lists::table
            .filter(lead_lists::tenant_id.eq(tenant_id))
            .filter(lead_lists::name.eq(name))
            .select(LeadList::as_select())
            .first(conn)
            .await
            .optional()
            .map_err(DbError::from)
    })
}

/// The lead of `list_id` with `phone`, if any.
async fn find_lead(db: &Db, list_id: i64, phone: &str) -> Result<Option<Lead>, DbError> {
    db_run!(db, |conn| {
        leads::table
            .filter(leads::list_id.eq(list_id))
            .filter(leads::phone.eq(phone))
            .select(Lead::as_select())
            .first(conn)
            .await
            .optional()
            .map_err(DbError::from)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead(tags: &str, fields: &str, updated_at: NaiveDateTime) -> Lead {
        Lead {
            id: 1,
            tenant_id: 1,
            list_id: 1,
            name: "Ali".into(),
            phone: "60123456789".into(),
            niche: Some("food".into()),
            tags: tags.into(),
            status: "prospect".into(),
            fields: fields.into(),
            device_id: None,
            created_at: updated_at,
            updated_at,
        }
    }

    #[test]
    fn a_signature_verifies_only_for_its_secret_timestamp_and_body() {
        let body = br#"{"phone":"0123456789"}"#;
        let signature = sign("secret", "1700000000", body);
        assert!(signature.starts_with("sha256="));
        assert_eq!(signature.len(), "sha256=".len() + 64);
        assert!(verify_signature("secret", "1700000000", body, &signature).is_ok());
        let upper = format!("sha256={}", signature[7..].to_uppercase());
        assert!(verify_signature("secret", "1700000000", body, &upper).is_ok());
        for (secret, ts, body, header) in [
            ("other", "1700000000", &body[..], signature.as_str()),
            ("secret", "1700000001", &body[..], signature.as_str()),
            ("secret", "1700000000", &b"{}"[..], signature.as_str()),
            ("secret", "1700000000", &body[..], &signature[7..]),
            ("secret", "1700000000", &body[..], "sha256=zz"),
            ("secret", "1700000000", &body[..], "sha256="),
        ] {
            assert!(matches!(
                verify_signature(secret, ts, body, header),
                Err(WebhookError::BadSignature)
            ));
        }
    }

    #[test]
    fn the_signature_matches_openssl() {
        // printf '%s' '1700000000.{"phone":"0123456789"}' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            sign("secret", "1700000000", br#"{"phone":"0123456789"}"#),
            "sha256=ca555ebf986f7970cdebf3e9999dc80d048397dd99ead8cf7fd362ad7f703f96"
        );
    }

    #[test]
    fn timestamps_outside_the_window_are_stale() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(check_timestamp("1700000000", now).unwrap(), 1_700_000_000);
        assert!(check_timestamp("1700000300", now).is_ok());
        assert!(check_timestamp("1699999700", now).is_ok());
        assert!(matches!(
            check_timestamp("1700000301", now),
            Err(WebhookError::StaleTimestamp)
        ));
        assert!(matches!(
            check_timestamp("1699999699", now),
            Err(WebhookError::StaleTimestamp)
        ));
        assert!(matches!(
            check_timestamp("soon", now),
            Err(WebhookError::BadSignature)
        ));
    }

    #[test]
    fn secrets_are_long_and_random() {
        let (a, b) = (new_secret(), new_secret());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn bodies_are_validated_field_by_field() {
        let parsed = WebhookLead::parse(
            br#"{"phone":" 012-345 6789 ","name":"Ali","tags":["VIP"," kl "],
                 "status":"Hot","fields":{"city":"KL","age":30,"empty":""}}"#,
        )
        .unwrap();
        assert_eq!(parsed.phone, "012-345 6789");
        assert_eq!(parsed.tags.unwrap(), ["vip", "kl"]);
        assert_eq!(parsed.status.as_deref(), Some("hot"));
        let fields = parsed.fields.unwrap();
        assert_eq!(fields.get("age").map(String::as_str), Some("30"));
        assert!(!fields.contains_key("empty"));
        assert_eq!(
            WebhookLead::parse(br#"{"phone":60123456789}"#)
                .unwrap()
                .phone,
            "60123456789"
        );
        let cases: [(&[u8], &str); 12] = [
            (br#"{"name":"x"}"#, "phone:"),
            (br#"{"phone":""}"#, "phone:"),
            (br#"{"phone":["1"]}"#, "phone:"),
            (br#"{"phone":"1","tags":"vip"}"#, "tags:"),
            (br#"{"phone":"1","tags":[1]}"#, "tags:"),
            (br#"{"phone":"1","status":"a b"}"#, "status:"),
            (br#"{"phone":"1","fields":[]}"#, "fields:"),
            (br#"{"phone":"1","fields":{"a":{}}}"#, "fields.a:"),
            (br#"{"phone":"1","phon":"2"}"#, "phon:"),
            (br#"{"phone":"1","name":5}"#, "name:"),
            (br#"[1]"#, "body:"),
            (br#"{"phone":"#, "body:"),
        ];
        for (body, field) in cases {
            match WebhookLead::parse(body) {
                Err(WebhookError::InvalidLead(message)) => {
                    assert!(message.starts_with(field), "{message} should name {field}")
                }
                other => panic!("{} parsed as {other:?}", String::from_utf8_lossy(body)),
            }
        }
    }

    #[test]
    fn an_update_merges_tags_and_fields_and_always_moves_updated_at() {
        let then = Utc::now().naive_utc();
        let existing = lead(",vip,", r#"{"city":"KL"}"#, then);
        let input = WebhookLead {
            phone: "60123456789".into(),
            tags: Some(vec!["cold".into(), "vip".into()]),
            fields: Some([("age".to_string(), "30".to_string())].into()),
            ..WebhookLead::default()
        };
        let patch = patch_for(&existing, &input, then);
        assert_eq!(patch.tags.as_deref(), Some(",vip,cold,"));
        assert_eq!(patch.fields.as_deref(), Some(r#"{"age":"30","city":"KL"}"#));
        assert_eq!(patch.name, None);
        assert_eq!(patch.status, None);
        assert!(patch.updated_at.unwrap() > then);
        let later = then + TimeDelta::seconds(1);
        assert_eq!(patch_for(&existing, &input, later).updated_at, Some(later));
        let bare = WebhookLead {
            phone: "60123456789".into(),
            ..WebhookLead::default()
        };
        let patch = patch_for(&existing, &bare, later);
        assert_eq!(patch.tags, None);
        assert_eq!(patch.fields, None);
    }
}

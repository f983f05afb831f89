//! Rows of `lead_lists`, `leads` and `opt_outs`, and the pure rules every way into them shares
//! (the API, the CSV import): tags, statuses, custom fields, and how an import updates a lead.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{lead_lists, leads, opt_outs};

/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 50;
/// Longest status, in characters.
pub const MAX_STATUS_CHARS: usize = 32;
/// The status of a lead nobody classified yet (the seed system's "prospect").
pub const DEFAULT_STATUS: &str = "prospect";
/// Most characters of a client's value quoted back in an error message.
pub const MAX_ECHO_CHARS: usize = 64;

/// A client's value quoted for an error message: its first [`MAX_ECHO_CHARS`] characters, and
/// `…` when it was longer, so a 64 KiB cell cannot make a 64 KiB error (times a thousand rows
/// in an import report).
pub fn echo(value: &str) -> String {
    match value.char_indices().nth(MAX_ECHO_CHARS) {
        Some((cut, _)) => format!("{:?}…", &value[..cut]),
        None => format!("{value:?}"),
    }
}

/// A named list of leads of one tenant.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = lead_lists)]
pub struct LeadList {
    /// Id.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// Name, unique within the tenant.
    pub name: String,
    /// Creation time (UTC).
    pub created_at: NaiveDateTime,
    /// Last change of the list or its leads (UTC).
    pub updated_at: NaiveDateTime,
}

/// A stored lead.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = leads)]
pub struct Lead {
    /// Id.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// Its list.
    pub list_id: i64,
    /// Display name (may be empty).
    pub name: String,
    /// E.164 digits without the plus.
    pub phone: String,
    /// Business niche, free text.
    pub niche: Option<String>,
    /// Tags as stored: lower-case, wrapped in commas (see [`encode_tags`]).
    pub tags: String,
    /// Lower-case status word.
    pub status: String,
    /// Custom columns as a JSON object of strings.
    pub fields: String,
    /// The lead's own device, once chosen.
    pub device_id: Option<i64>,
    /// Creation time (UTC).
    pub created_at: NaiveDateTime,
    /// Last change (UTC).
    pub updated_at: NaiveDateTime,
}

/// A lead to insert.
#[derive(Debug, Clone, PartialEq, Insertable)]
#[diesel(table_name = leads, treat_none_as_default_value = false)]
pub struct NewLead {
    /// Owning tenant.
    pub tenant_id: i64,
    /// Its list.
    pub list_id: i64,
    /// Display name.
    pub name: String,
    /// E.164 digits.
    pub phone: String,
    /// Niche.
    pub niche: Option<String>,
    /// Encoded tags.
    pub tags: String,
    /// Status.
    pub status: String,
    /// JSON object of custom fields.
    pub fields: String,
    /// Creation time.
    pub created_at: NaiveDateTime,
    /// Same as `created_at`.
    pub updated_at: NaiveDateTime,
}

/// Changes to a lead; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, PartialEq, AsChangeset)]
#[diesel(table_name = leads)]
pub struct LeadPatch {
    /// New name.
    pub name: Option<String>,
    /// New phone (E.164 digits).
    pub phone: Option<String>,
    /// New niche (`Some(None)` clears it).
    pub niche: Option<Option<String>>,
    /// New encoded tags.
    pub tags: Option<String>,
    /// New status.
    pub status: Option<String>,
    /// New JSON object of custom fields.
    pub fields: Option<String>,
    /// Change time.
    pub updated_at: Option<NaiveDateTime>,
}

/// A number on the tenant's opt-out list.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = opt_outs)]
pub struct OptOut {
    /// Id.
    pub id: i64,
    /// Owning tenant.
    pub tenant_id: i64,
    /// E.164 digits.
    pub phone: String,
    /// `keyword`, `manual` or `import`.
    pub source: String,
    /// Free text (the keyword received, or what the user typed).
    pub reason: Option<String>,
    /// When it was added (UTC).
    pub created_at: NaiveDateTime,
}

/// A lead as read from a CSV row or an API body, already validated and normalized.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LeadInput {
    /// Name (may be empty).
    pub name: String,
    /// E.164 digits.
    pub phone: String,
    /// Niche, if given and not empty.
    pub niche: Option<String>,
    /// Normalized tags (see [`normalize_tags`]).
    pub tags: Vec<String>,
    /// Normalized status, if given.
    pub status: Option<String>,
    /// Custom fields with non-empty values.
    pub fields: BTreeMap<String, String>,
}

impl LeadInput {
    /// The row to insert for this input.
    pub fn into_new(self, tenant_id: i64, list_id: i64, now: NaiveDateTime) -> NewLead {
        NewLead {
            tenant_id,
            list_id,
            name: self.name,
            phone: self.phone,
            niche: self.niche,
            tags: encode_tags(&self.tags),
            status: self.status.unwrap_or_else(|| DEFAULT_STATUS.to_string()),
            fields: fields_json(&self.fields),
            created_at: now,
            updated_at: now,
        }
    }

    /// How an import changes `existing` with this input: every non-empty value replaces the
    /// stored one (tags as a whole, custom fields key by key); empty cells keep what is stored.
    pub fn merge_into(&self, existing: &Lead, now: NaiveDateTime) -> LeadPatch {
        let mut fields = parse_fields(&existing.fields);
        fields.extend(self.fields.clone());
        LeadPatch {
            name: (!self.name.is_empty()).then(|| self.name.clone()),
            niche: self.niche.clone().map(Some),
            tags: (!self.tags.is_empty()).then(|| encode_tags(&self.tags)),
            status: self.status.clone(),
            fields: (!self.fields.is_empty()).then(|| fields_json(&fields)),
            updated_at: Some(now),
            ..LeadPatch::default()
        }
    }
}

/// Tags from free text: split on `;`, `|` or `,`, trimmed, lower-cased, empty ones dropped,
/// repeats removed (first occurrence kept).
pub fn split_tags(text: &str) -> Result<Vec<String>, String> {
    normalize_tags(text.split([';', '|', ',']))
}

/// Normalizes tags: trimmed, lower-case, no empties, no repeats, no commas, at most
/// [`MAX_TAG_CHARS`] characters each.
pub fn normalize_tags<'a>(tags: impl IntoIterator<Item = &'a str>) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let tag = tag.trim().to_lowercase();
        if tag.is_empty() || out.contains(&tag) {
            continue;
        }
        if tag.contains(',') {
            return Err(format!(
                "bad tag {}: tags cannot contain commas",
                echo(&tag)
            ));
        }
        if tag.chars().count() > MAX_TAG_CHARS {
            return Err(format!(
                "bad tag {}: longer than {MAX_TAG_CHARS} characters",
                echo(&tag)
            ));
        }
        out.push(tag);
    }
    Ok(out)
}

/// Tags as stored: `",vip,kl,"`, or `""` for none, so `LIKE '%,vip,%'` finds a tag.
pub fn encode_tags(tags: &[String]) -> String {
    if tags.is_empty() {
        String::new()
    } else {
        format!(",{},", tags.join(","))
    }
}

/// Stored tags back to a list.
pub fn decode_tags(stored: &str) -> Vec<String> {
    stored
        .split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Normalizes a status word: trimmed, lower-case, letters, digits, `_` and `-`, at most
/// [`MAX_STATUS_CHARS`] characters.
pub fn normalize_status(raw: &str) -> Result<String, String> {
    let status = raw.trim().to_lowercase();
    let valid = !status.is_empty()
        && status.chars().count() <= MAX_STATUS_CHARS
        && status
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(status)
    } else {
        Err(format!(
            "bad status {}: use 1–{MAX_STATUS_CHARS} letters, digits, '_' or '-'",
            echo(raw)
        ))
    }
}

/// Custom fields as the stored JSON object.
pub fn fields_json(fields: &BTreeMap<String, String>) -> String {
    serde_json::to_string(fields).unwrap_or_else(|_| "{}".into())
}

/// The stored JSON object of custom fields (anything unreadable reads as none).
pub fn parse_fields(stored: &str) -> BTreeMap<String, String> {
    serde_json::from_str(stored).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_split_normalized_and_round_trip() {
        let tags = split_tags(" VIP; kl|vip ,,  Hot Lead ").unwrap();
        assert_eq!(tags, ["vip", "kl", "hot lead"]);
        assert_eq!(encode_tags(&tags), ",vip,kl,hot lead,");
        assert_eq!(decode_tags(&encode_tags(&tags)), tags);
        assert_eq!(encode_tags(&[]), "");
        assert!(decode_tags("").is_empty());
        assert!(split_tags(&"x".repeat(51)).is_err());
    }

    #[test]
    fn echoed_values_are_cut_to_64_characters() {
        assert_eq!(echo("KL"), "\"KL\"");
        assert_eq!(echo(&"é".repeat(64)), format!("{:?}", "é".repeat(64)));
        assert_eq!(echo(&"é".repeat(65)), format!("{:?}…", "é".repeat(64)));
        let err = normalize_status(&"x".repeat(65_536)).unwrap_err();
        assert!(err.len() < 150, "{err}");
        assert!(err.starts_with(&format!("bad status \"{}\"…", "x".repeat(64))));
        let err = split_tags(&"y".repeat(65_536)).unwrap_err();
        assert!(err.len() < 150, "{err}");
    }

    #[test]
    fn statuses_are_lower_case_words() {
        assert_eq!(normalize_status(" Customer ").unwrap(), "customer");
        assert!(normalize_status("").is_err());
        assert!(normalize_status("a b").is_err());
    }

    #[test]
    fn an_import_keeps_stored_values_where_the_row_is_empty() {
        let now = chrono::Utc::now().naive_utc();
        let existing = Lead {
            id: 1,
            tenant_id: 1,
            list_id: 1,
            name: "Ali".into(),
            phone: "60123456789".into(),
            niche: Some("food".into()),
            tags: ",vip,".into(),
            status: "customer".into(),
            fields: r#"{"city":"KL","age":"30"}"#.into(),
            device_id: None,
            created_at: now,
            updated_at: now,
        };
        let input = LeadInput {
            phone: existing.phone.clone(),
            fields: [("city".to_string(), "Penang".to_string())].into(),
            ..LeadInput::default()
        };
        let patch = input.merge_into(&existing, now);
        assert_eq!(patch.name, None);
        assert_eq!(patch.niche, None);
        assert_eq!(patch.tags, None);
        assert_eq!(patch.status, None);
        assert_eq!(
            patch.fields.as_deref(),
            Some(r#"{"age":"30","city":"Penang"}"#)
        );
    }
}

//! Phone numbers of leads: whatever people type ("012-345 6789", "+60 12 345 6789",
//! "60123456789") becomes E.164 digits without the plus ("60123456789"), the user part of a
//! WhatsApp JID.

use phonenumber::country::Id;

/// Why a phone number was rejected, for the per-row import report and 422 errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Nothing to parse.
    #[error("phone is empty")]
    Empty,
    /// Not a phone number at all.
    #[error("not a phone number: {0:?}")]
    Unparseable(String),
    /// Parsed, but no such number can exist in its country.
    #[error("not a valid number for its country: {0:?}")]
    Invalid(String),
}

/// The country for an ISO 3166 alpha-2 code (any case), if known.
pub fn country_code(iso: &str) -> Option<Id> {
    iso.trim().to_ascii_uppercase().parse::<Id>().ok()
}

/// Normalizes `raw` to E.164 digits; numbers without a country code are read as numbers of
/// `default_country`.
pub fn normalize(raw: &str, default_country: Id) -> Result<String, PhoneError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(PhoneError::Empty);
    }
    // "60123…" without a plus is common in lead sheets: try it as international first when it
    // cannot be a national number of the default country.
    let candidates = [trimmed.to_string(), format!("+{trimmed}")];
    let mut parsed_any = false;
    for (index, candidate) in candidates.iter().enumerate() {
        if index == 1 && (trimmed.starts_with('+') || trimmed.starts_with('0')) {
            break;
        }
        let Ok(number) = phonenumber::parse(Some(default_country), candidate) else {
            continue;
        };
        parsed_any = true;
        if phonenumber::is_valid(&number) {
            let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
            return Ok(e164.trim_start_matches('+').to_string());
        }
    }
    if parsed_any {
        Err(PhoneError::Invalid(trimmed.to_string()))
    } else {
        Err(PhoneError::Unparseable(trimmed.to_string()))
    }
}

/// The WhatsApp JID of E.164 digits.
pub fn jid_of(phone: &str) -> String {
    format!("{phone}@s.whatsapp.net")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn my() -> Id {
        country_code("my").unwrap()
    }

    #[test]
    fn national_and_international_forms_agree() {
        for raw in [
            "012-345 6789",
            "+60 12-345 6789",
            "60123456789",
            " (012) 3456789 ",
        ] {
            assert_eq!(normalize(raw, my()).as_deref(), Ok("60123456789"), "{raw}");
        }
    }

    #[test]
    fn other_countries_keep_their_code() {
        assert_eq!(
            normalize("+62 812-3456-7890", my()).as_deref(),
            Ok("6281234567890")
        );
        let id = country_code("ID").unwrap();
        assert_eq!(
            normalize("0812 3456 7890", id).as_deref(),
            Ok("6281234567890")
        );
    }

    #[test]
    fn garbage_and_impossible_numbers_are_rejected_with_a_reason() {
        assert_eq!(normalize("  ", my()), Err(PhoneError::Empty));
        assert!(matches!(
            normalize("call me", my()),
            Err(PhoneError::Unparseable(_))
        ));
        assert!(matches!(
            normalize("12", my()),
            Err(PhoneError::Invalid(_) | PhoneError::Unparseable(_))
        ));
        assert_eq!(country_code("XX"), None);
    }
}

//! Phones and JIDs, in one place: what a phone is everywhere in wafleet.
//!
//! A phone is E.164 digits without the plus (`60123456789`): what lead sheets hold after
//! [`normalize`] ("012-345 6789", "+60 12 345 6789" and "60123456789" all become it), and the
//! user part of a person's WhatsApp JID (`60123456789@s.whatsapp.net`, one of their linked
//! devices `60123456789:3@s.whatsapp.net`). Groups (`…@g.us`), broadcast lists and LIDs
//! (`…@lid`) have no phone. Nothing here imports the rest of the crate.

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
            let digits = e164.trim_start_matches('+');
            // The library calls some over-long national numbers valid (letters read as keypad
            // digits can make them); E.164 has at most 15 digits, as JIDs do (`is_phone`).
            if !is_phone(digits) {
                continue;
            }
            return Ok(digits.to_string());
        }
    }
    if parsed_any {
        Err(PhoneError::Invalid(trimmed.to_string()))
    } else {
        Err(PhoneError::Unparseable(trimmed.to_string()))
    }
}

/// Server part of a person's JID.
pub const USER_SERVER: &str = "s.whatsapp.net";

/// The WhatsApp JID of E.164 digits.
pub fn jid_of(phone: &str) -> String {
    format!("{phone}@{USER_SERVER}")
}

/// The server of a LID JID: WhatsApp's anonymous per-person id (`123456789012345@lid`), which
/// hides the phone number; the phone comes separately (a message's alternate sender).
pub const LID_SERVER: &str = "lid";

/// The JID of a LID user part.
pub fn lid_jid(lid: &str) -> String {
    format!("{lid}@{LID_SERVER}")
}

/// The user part of a LID JID, without any `:device` suffix (`1234:5@lid` → `1234`); `None`
/// for every other JID.
pub fn lid_of_jid(jid: &str) -> Option<&str> {
    let user = jid.strip_suffix(LID_SERVER)?.strip_suffix('@')?;
    let user = user.split([':', '.']).next()?;
    (!user.is_empty() && user.bytes().all(|b| b.is_ascii_digit())).then_some(user)
}

/// The user part of any JID (`60123456789:3@s.whatsapp.net` → `60123456789`, `1203@g.us` →
/// `1203`): what the chat list shows under a chat's name.
pub fn user_of(jid: &str) -> &str {
    jid.split(['@', ':']).next().unwrap_or_default()
}

/// The phone of a person's JID, possibly with a `:device` suffix; `None` for groups, LIDs,
/// broadcast lists and anything whose user part is not 7 to 15 digits.
pub fn phone_of_jid(jid: &str) -> Option<&str> {
    let user = jid.strip_suffix(USER_SERVER)?.strip_suffix('@')?;
    let user = user.split([':', '.']).next()?;
    is_phone(user).then_some(user)
}

/// A phone typed in international form (an optional `+`, then 8 to 15 digits, as API clients
/// give recipients), as E.164 digits.
pub fn parse_international(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let digits = raw.strip_prefix('+').unwrap_or(raw);
    (digits.len() >= 8 && is_phone(digits)).then(|| digits.to_owned())
}

/// Whether `digits` can be E.164 digits: 7 to 15 ASCII digits.
fn is_phone(digits: &str) -> bool {
    (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
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

    #[test]
    fn numbers_longer_than_e164_allows_are_rejected() {
        // Found by the `phone` fuzz target: a German national number with a keypad letter
        // normalised to 16 digits, which no JID can hold.
        let de = country_code("DE").unwrap();
        let result = normalize("5679056555-0V12", de);
        assert_ne!(result.as_deref(), Ok("4956790565550812"));
        if let Ok(phone) = normalize("5679056555-0V12", de) {
            assert!(is_phone(&phone), "{phone}");
        }
    }

    #[test]
    fn only_personal_jids_have_a_phone() {
        assert_eq!(
            phone_of_jid("60123456789@s.whatsapp.net"),
            Some("60123456789")
        );
        assert_eq!(
            phone_of_jid("60123456789:12@s.whatsapp.net"),
            Some("60123456789")
        );
        assert_eq!(phone_of_jid("1203630@g.us"), None);
        assert_eq!(phone_of_jid("abc@s.whatsapp.net"), None);
        assert_eq!(phone_of_jid("60123456789@lid"), None);
        assert_eq!(lid_of_jid("123456789012345@lid"), Some("123456789012345"));
        assert_eq!(lid_of_jid("123456789012345:7@lid"), Some("123456789012345"));
        assert_eq!(lid_of_jid("60123456789@s.whatsapp.net"), None);
        assert_eq!(lid_of_jid("abc@lid"), None);
        assert_eq!(lid_of_jid("@lid"), None);
        assert_eq!(lid_jid("1234"), "1234@lid");
        assert_eq!(phone_of_jid("60123456789xs.whatsapp.net"), None);
    }

    #[test]
    fn international_numbers_are_8_to_15_digits_with_an_optional_plus() {
        assert_eq!(
            parse_international(" +60123456789 ").as_deref(),
            Some("60123456789")
        );
        assert_eq!(parse_international("1234567"), None);
        assert_eq!(parse_international("1234567890123456"), None);
        assert_eq!(parse_international("+60 12"), None);
    }

    #[test]
    fn the_user_part_and_the_jid_are_inverse() {
        assert_eq!(user_of("60123456789:3@s.whatsapp.net"), "60123456789");
        assert_eq!(user_of("120363@g.us"), "120363");
        assert_eq!(jid_of("60123456789"), "60123456789@s.whatsapp.net");
        assert_eq!(phone_of_jid(&jid_of("60123456789")), Some("60123456789"));
    }
}

//! Phone numbers and JIDs as the simulator reads and writes them.
//!
//! A user is `<phone>@s.whatsapp.net`; one of its linked devices is
//! `<phone>:<n>@s.whatsapp.net`. Groups and other servers are not simulated, so they are not
//! valid recipients.

/// Server part of user JIDs.
const USER_SERVER: &str = "s.whatsapp.net";

/// Reads a phone number in international form: an optional `+`, then 8 to 15 digits.
pub(super) fn parse_phone(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let digits = raw.strip_prefix('+').unwrap_or(raw);
    let valid = (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    valid.then(|| digits.to_owned())
}

/// Reads a recipient given as a phone number or a user JID; returns its phone number.
pub(super) fn parse_recipient(to: &str) -> Option<String> {
    match to.trim().split_once('@') {
        Some((user, USER_SERVER)) => parse_phone(user),
        Some(_) => None,
        None => parse_phone(to),
    }
}

/// The chat JID of a phone number.
pub(super) fn user_jid(phone: &str) -> String {
    format!("{phone}@{USER_SERVER}")
}

/// The JID of the `index`-th device linked to a phone number.
pub(super) fn device_jid(phone: &str, index: u32) -> String {
    format!("{phone}:{index}@{USER_SERVER}")
}

/// The last four digits, to make readable profile names.
pub(super) fn last_digits(phone: &str) -> &str {
    phone.get(phone.len().saturating_sub(4)..).unwrap_or(phone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_8_to_15_digits_with_an_optional_plus() {
        assert_eq!(parse_phone("60123456789"), Some("60123456789".into()));
        assert_eq!(parse_phone(" +60123456789 "), Some("60123456789".into()));
        assert_eq!(parse_phone("1234567"), None);
        assert_eq!(parse_phone("1234567890123456"), None);
        assert_eq!(parse_phone("6012-345678"), None);
        assert_eq!(parse_phone(""), None);
    }

    #[test]
    fn recipients_are_phones_or_user_jids() {
        assert_eq!(parse_recipient("60123456789"), Some("60123456789".into()));
        assert_eq!(
            parse_recipient("60123456789@s.whatsapp.net"),
            Some("60123456789".into())
        );
        assert_eq!(parse_recipient("60123456789:2@s.whatsapp.net"), None);
        assert_eq!(parse_recipient("120363@g.us"), None);
        assert_eq!(parse_recipient("bob"), None);
    }

    #[test]
    fn jids_and_names_are_formatted_like_whatsapp() {
        assert_eq!(user_jid("60123456789"), "60123456789@s.whatsapp.net");
        assert_eq!(device_jid("60123456789", 3), "60123456789:3@s.whatsapp.net");
        assert_eq!(last_digits("60123456789"), "6789");
        assert_eq!(last_digits("12"), "12");
    }
}

//! Phone numbers and JIDs as the simulator reads and writes them.
//!
//! A user is `<phone>@s.whatsapp.net`; one of its linked devices is
//! `<phone>:<n>@s.whatsapp.net`. Groups and other servers are not simulated, so they are not
//! valid recipients.

use crate::phone::{parse_international, USER_SERVER};

/// Reads a recipient given as a phone number or a user JID; returns its phone number.
pub(super) fn parse_recipient(to: &str) -> Option<String> {
    match to.trim().split_once('@') {
        Some((user, USER_SERVER)) => parse_international(user),
        Some(_) => None,
        None => parse_international(to),
    }
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
    use crate::phone::jid_of;

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
        assert_eq!(jid_of("60123456789"), "60123456789@s.whatsapp.net");
        assert_eq!(device_jid("60123456789", 3), "60123456789:3@s.whatsapp.net");
        assert_eq!(last_digits("60123456789"), "6789");
        assert_eq!(last_digits("12"), "12");
    }
}

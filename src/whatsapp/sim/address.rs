//! Phone numbers and JIDs as the simulator reads and writes them.
//!
//! A user is `<phone>@s.whatsapp.net`; one of its linked devices is
//! `<phone>:<n>@s.whatsapp.net`. A contact WhatsApp addresses by LID writes from
//! `<lid>@lid`, its LID derived from its phone (15 digits, stable). Groups are the devices' own
//! (`groups.rs`); other servers are not simulated, so they are not valid recipients.

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

/// The LID user part of the contact at `phone`: 15 digits, the same on every call (FNV-1a of
/// the phone), never a valid phone of its own.
pub(super) fn lid_of(phone: &str) -> String {
    (100_000_000_000_000 + fnv1a(phone) % 900_000_000_000_000).to_string()
}

/// Whether the contact at `phone` is one of the `share` (0..=1) WhatsApp addresses by LID: the
/// same answer for the same phone every time.
pub(super) fn addressed_by_lid(phone: &str, share: f64) -> bool {
    // A second hash, so the choice does not follow the LID's digits.
    let draw = fnv1a(&format!("lid:{phone}")) % 10_000;
    (draw as f64) < share * 10_000.0
}

/// 64-bit FNV-1a.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
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
    fn lids_are_stable_fifteen_digits_and_shared_by_the_setting() {
        let lid = lid_of("60123456789");
        assert_eq!(lid.len(), 15);
        assert!(lid.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(lid, lid_of("60123456789"));
        assert_ne!(lid, lid_of("60123456780"));
        let phones: Vec<String> = (0..2000).map(|n| format!("6012{n:07}")).collect();
        let lids = phones.iter().filter(|p| addressed_by_lid(p, 0.25)).count();
        assert!((400..=600).contains(&lids), "{lids} of 2000");
        assert!(phones.iter().all(|p| !addressed_by_lid(p, 0.0)));
        assert!(phones.iter().all(|p| addressed_by_lid(p, 1.0)));
    }

    #[test]
    fn jids_and_names_are_formatted_like_whatsapp() {
        assert_eq!(jid_of("60123456789"), "60123456789@s.whatsapp.net");
        assert_eq!(device_jid("60123456789", 3), "60123456789:3@s.whatsapp.net");
        assert_eq!(last_digits("60123456789"), "6789");
        assert_eq!(last_digits("12"), "12");
    }
}

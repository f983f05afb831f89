//! The simulated groups: every device on the network is in `sim.groups` groups of its own,
//! `120363<device id, 9 digits><n, 3 digits>@g.us`, each with a title and five contacts
//! (`60179<n, 3 digits><k, 3 digits>`) besides the device. Contacts write in them through
//! `POST /api/v1/sim/inbound` (`group`) and the demo chatter; a device can send to them.

use crate::whatsapp::Group;

/// Titles of a device's groups, in order (repeated past the last).
const TITLES: [&str; 6] = [
    "Sales team",
    "Family",
    "Customers KL",
    "Weekend riders",
    "Suppliers",
    "Book club",
];

/// Contacts in each group besides the device.
pub(super) const MEMBERS: u32 = 5;

/// The `count` groups of a device.
pub(super) fn of_device(device_id: i64, count: u32) -> Vec<Group> {
    (0..count)
        .map(|n| Group {
            jid: jid(device_id, n),
            name: TITLES[n as usize % TITLES.len()].to_string(),
            participants: MEMBERS + 1,
        })
        .collect()
}

/// The device's group with JID `jid`, if it has one.
pub(super) fn find(device_id: i64, count: u32, jid: &str) -> Option<Group> {
    of_device(device_id, count)
        .into_iter()
        .find(|group| group.jid == jid.trim())
}

/// The phone of the `k`-th contact (0..[`MEMBERS`]) of a device's `n`-th group.
pub(super) fn member(n: u32, k: u32) -> String {
    format!("60179{n:03}{k:03}")
}

/// The JID of a device's `n`-th group.
fn jid(device_id: i64, n: u32) -> String {
    format!("120363{device_id:09}{n:03}@g.us")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_device_has_its_own_titled_groups() {
        let groups = of_device(7, 2);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].jid, "120363000000007000@g.us");
        assert_eq!(groups[1].name, "Family");
        assert_eq!(groups[0].participants, MEMBERS + 1);
        assert_eq!(
            find(7, 2, "120363000000007001@g.us"),
            Some(groups[1].clone())
        );
        assert_eq!(find(8, 2, "120363000000007001@g.us"), None);
        assert_eq!(find(7, 1, "120363000000007001@g.us"), None);
        assert_eq!(member(1, 4), "60179001004");
    }
}

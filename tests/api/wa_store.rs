//! Conformance of the whatsapp-rust session store on our database (`WaStore`), written once
//! and run on SQLite and PostgreSQL: every method group of the `Backend` traits round-trips,
//! deletes, and stays isolated between two devices; a wipe (logout) and a device deletion leave
//! no `wa_` row of that device and touch nothing of the other.

use std::sync::Arc;

use wafleet::auth::store::insert_tenant;
use wafleet::db::Db;
use wafleet::device::store as devices;
use wafleet::whatsapp::real::store::{count_device_rows, wipe_device, WaStore};
use whatsapp_rust::bytes::Bytes;
use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::store::traits::{
    AppStateSyncKey, AppSyncStore, DeviceInfo, DeviceListRecord, DeviceStore, LidPnMappingEntry,
    MsgSecretEntry, MsgSecretStore, PendingInboundKey, PendingInboundRow, ProtocolStore,
    SignalStore, TcTokenEntry,
};

use crate::helpers::TestApp;

crate::both_backends!(
    wa_store_identities,
    wa_store_sessions,
    wa_store_prekeys,
    wa_store_signed_prekeys,
    wa_store_sender_keys,
    wa_store_app_state,
    wa_store_sender_key_devices,
    wa_store_lid_mappings,
    wa_store_base_keys,
    wa_store_device_registry,
    wa_store_group_metadata,
    wa_store_tc_tokens,
    wa_store_sent_messages,
    wa_store_pending_inbound,
    wa_store_msg_secrets,
    wa_store_device_data,
    wa_store_wipe_and_delete_remove_every_row,
);

/// Two devices of one tenant and their stores.
async fn two_stores(db: &Db) -> (WaStore, WaStore) {
    let (_, a, b) = tenant_and_stores(db).await;
    (a, b)
}

/// A tenant, two of its devices and their stores.
async fn tenant_and_stores(db: &Db) -> (i64, WaStore, WaStore) {
    let tenant = insert_tenant(db, "Acme", "Asia/Kuala_Lumpur")
        .await
        .unwrap();
    let a = devices::insert_device(db, tenant.id, "A").await.unwrap();
    let b = devices::insert_device(db, tenant.id, "B").await.unwrap();
    (
        tenant.id,
        WaStore::new(db.clone(), a.id),
        WaStore::new(db.clone(), b.id),
    )
}

async fn wa_store_identities(app: TestApp) {
    let (a, b) = two_stores(&app.db).await;
    let addr = "60123456789.0:1";
    assert_eq!(a.load_identity(addr).await.unwrap(), None);
    a.put_identity(addr, [1; 32]).await.unwrap();
    b.put_identity(addr, [2; 32]).await.unwrap();
    assert_eq!(a.load_identity(addr).await.unwrap(), Some([1; 32]));
    assert_eq!(b.load_identity(addr).await.unwrap(), Some([2; 32]));
    // Upsert replaces.
    a.put_identity(addr, [3; 32]).await.unwrap();
    assert_eq!(a.load_identity(addr).await.unwrap(), Some([3; 32]));
    // Batch.
    let batch: Vec<(Arc<str>, [u8; 32])> = (0..5u8)
        .map(|i| (Arc::from(format!("6019{i}.0:0")), [i; 32]))
        .collect();
    a.put_identities_batch(&batch).await.unwrap();
    for (addr, key) in &batch {
        assert_eq!(a.load_identity(addr).await.unwrap(), Some(*key));
        assert_eq!(b.load_identity(addr).await.unwrap(), None);
    }
    a.delete_identity(addr).await.unwrap();
    assert_eq!(a.load_identity(addr).await.unwrap(), None);
    assert_eq!(b.load_identity(addr).await.unwrap(), Some([2; 32]));
}

async fn wa_store_sessions(app: TestApp) {
    let (a, b) = two_stores(&app.db).await;
    let addr = "60123456789@s.whatsapp.net.0";
    assert!(!a.has_session(addr).await.unwrap());
    a.put_session(addr, b"session-a").await.unwrap();
    assert_eq!(
        a.get_session(addr).await.unwrap().as_deref(),
        Some(&b"session-a"[..])
    );
    assert!(a.has_session(addr).await.unwrap());
    assert!(!b.has_session(addr).await.unwrap());
    assert_eq!(b.get_session(addr).await.unwrap(), None);
    let batch: Vec<(Arc<str>, Bytes)> = vec![
        (
            Arc::from("60111@s.whatsapp.net"),
            Bytes::from_static(b"one"),
        ),
        (
            Arc::from("60111:2@s.whatsapp.net"),
            Bytes::from_static(b"two"),
        ),
        (Arc::from(addr), Bytes::from_static(b"replaced")),
    ];
    a.put_sessions_batch(&batch).await.unwrap();
    assert_eq!(
        a.get_session(addr).await.unwrap().as_deref(),
        Some(&b"replaced"[..])
    );
    assert_eq!(
        a.get_session("60111:2@s.whatsapp.net")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"two"[..])
    );
    assert!(a.has_signal_state_for_user("60111").await.unwrap());
    assert!(!b.has_signal_state_for_user("60111").await.unwrap());
    assert!(!a.has_signal_state_for_user("6011").await.unwrap());
    // Identities count too.
    b.put_identity("60777:3@s.whatsapp.net", [9; 32])
        .await
        .unwrap();
    assert!(b.has_signal_state_for_user("60777").await.unwrap());
    a.delete_session(addr).await.unwrap();
    assert!(!a.has_session(addr).await.unwrap());
}

async fn wa_store_prekeys(app: TestApp) {
    let (a, b) = two_stores(&app.db).await;
    assert_eq!(a.get_max_prekey_id().await.unwrap(), 0);
    a.store_prekey(1, b"pk1", false).await.unwrap();
    let batch: Vec<(u32, Bytes)> = (2..=812u32)
        .map(|i| (i, Bytes::from(format!("pk{i}"))))
        .collect();
    a.store_prekeys_batch(&batch, false).await.unwrap();
    b.store_prekey(5000, b"other", true).await.unwrap();
    assert_eq!(a.get_max_prekey_id().await.unwrap(), 812);
    assert_eq!(b.get_max_prekey_id().await.unwrap(), 5000);
    assert_eq!(
        a.load_prekey(7).await.unwrap().as_deref(),
        Some(&b"pk7"[..])
    );
    assert_eq!(b.load_prekey(7).await.unwrap(), None);
    let mut loaded = a.load_prekeys_batch(&[1, 2, 999_999, 5000]).await.unwrap();
    loaded.sort_by_key(|(id, _)| *id);
    assert_eq!(
        loaded,
        vec![
            (1, Bytes::from_static(b"pk1")),
            (2, Bytes::from_static(b"pk2"))
        ]
    );
    // Marking never resurrects a consumed key.
    a.remove_prekey(2).await.unwrap();
    a.mark_prekeys_uploaded(&[1, 2]).await.unwrap();
    assert_eq!(a.load_prekey(2).await.unwrap(), None);
    assert!(a.load_prekey(1).await.unwrap().is_some());
    assert!(b.load_prekey(5000).await.unwrap().is_some());
}

async fn wa_store_signed_prekeys(app: TestApp) {
    let (a, b) = two_stores(&app.db).await;
    a.store_signed_prekey(1, b"spk1").await.unwrap();
    a.store_signed_prekey(2, b"spk2").await.unwrap();
    a.store_signed_prekey(2, b"spk2b").await.unwrap();
    b.store_signed_prekey(1, b"other").await.unwrap();
    assert_eq!(
        a.load_signed_prekey(2).await.unwrap(),
        Some(b"spk2b".to_vec())
    );
    assert_eq!(
        a.load_all_signed_prekeys().await.unwrap(),
        vec![(1, b"spk1".to_vec()), (2, b"spk2b".to_vec())]
    );
    a.remove_signed_prekey(1).await.unwrap();
    assert_eq!(a.load_signed_prekey(1).await.unwrap(), None);
    assert_eq!(
        b.load_signed_prekey(1).await.unwrap(),
        Some(b"other".to_vec())
    );
}

async fn wa_store_sender_keys(app: TestApp) {
    let (a, b) = two_stores(&app.db).await;
    let addr = "120363021033254949@g.us::60123:1";
    a.put_sender_key(addr, b"sk").await.unwrap();
    assert_eq!(a.get_sender_key(addr).await.unwrap(), Some(b"sk".to_vec()));
    assert_eq!(b.get_sender_key(addr).await.unwrap(), None);
    let batch: Vec<(Arc<str>, Bytes)> = vec![
        (Arc::from(addr), Bytes::from_static(b"sk2")),
        (Arc::from("g2::x"), Bytes::from_static(b"x")),
    ];
    a.put_sender_keys_batch(&batch).await.unwrap();
    assert_eq!(a.get_sender_key(addr).await.unwrap(), Some(b"sk2".to_vec()));
    assert_eq!(
        a.get_sender_key("g2::x").await.unwrap(),
        Some(b"x".to_vec())
    );
    a.delete_sender_key(addr).await.unwrap();
    assert_eq!(a.get_sender_key(addr).await.unwrap(), None);
}

async fn wa_store_app_state(app: TestApp) {
    let (a, b) = two_stores(&app.db).await;
    // Sync keys.
    assert_eq!(a.get_latest_sync_key_id().await.unwrap(), None);
    let key = |n: u8| AppStateSyncKey {
        key_data: vec![n; 32],
        fingerprint: vec![n, n],
        timestamp: i64::from(n),
    };
    a.set_sync_key(&[0, 1], key(1)).await.unwrap();
    a.set_sync_key(&[0, 3], key(3)).await.unwrap();
    a.set_sync_key(&[0, 2], key(2)).await.unwrap();
    b.set_sync_key(&[9, 9], key(9)).await.unwrap();
    let got = a.get_sync_key(&[0, 3]).await.unwrap().unwrap();
    assert_eq!(
        (got.key_data, got.fingerprint, got.timestamp),
        (vec![3; 32], vec![3, 3], 3)
    );
    assert!(b.get_sync_key(&[0, 3]).await.unwrap().is_none());
    assert_eq!(a.get_latest_sync_key_id().await.unwrap(), Some(vec![0, 3]));
    assert_eq!(b.get_latest_sync_key_id().await.unwrap(), Some(vec![9, 9]));

    // Versions: a missing collection is the empty state.
    assert_eq!(a.get_version("regular").await.unwrap().version, 0);
    let mut index_value_map = std::collections::HashMap::new();
    index_value_map.insert("idx".to_string(), vec![1, 2, 3]);
    let state = HashState {
        version: 42,
        hash: [7; 128],
        index_value_map,
        ..Default::default()
    };
    a.set_version("regular", state).await.unwrap();
    let back = a.get_version("regular").await.unwrap();
    assert_eq!(back.version, 42);
    assert_eq!(back.hash, [7; 128]);
    assert_eq!(back.index_value_map.get("idx"), Some(&vec![1, 2, 3]));
    assert_eq!(b.get_version("regular").await.unwrap().version, 0);

    // Mutation MACs.
    let macs: Vec<AppStateMutationMAC> = (0..4u8)
        .map(|i| AppStateMutationMAC {
            index_mac: vec![i; 32],
            value_mac: vec![i + 100; 32],
        })
        .collect();
    a.put_mutation_macs("regular", 42, &macs).await.unwrap();
    b.put_mutation_macs("regular", 1, &macs[..1]).await.unwrap();
    assert_eq!(
        a.get_mutation_mac("regular", &[2; 32]).await.unwrap(),
        Some(vec![102; 32])
    );
    assert_eq!(a.get_mutation_mac("other", &[2; 32]).await.unwrap(), None);
    let found = a
        .get_mutation_macs("regular", &[[1; 32], [3; 32], [9; 32]])
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found.get(&[3; 32]), Some(&vec![103; 32]));
    a.delete_mutation_macs("regular", &[vec![1; 32]])
        .await
        .unwrap();
    assert_eq!(a.get_mutation_mac("regular", &[1; 32]).await.unwrap(), None);
    a.clear_mutation_macs("regular").await.unwrap();
    assert_eq!(a.get_mutation_mac("regular", &[0; 32]).await.unwrap(), None);
    assert_eq!(
        b.get_mutation_mac("regular", &[0; 32]).await.unwrap(),
        Some(vec![100; 32])
    );
}

async fn wa_store_sender_key_devices(app: TestApp) {
    let (a, b) = two_stores(&app.db).await;
    let group = "120363021033254949@g.us";
    a.set_sender_key_status(
        group,
        &[
            ("601:1@s.whatsapp.net", true),
            ("602:0@s.whatsapp.net", false),
        ],
    )
    .await
    .unwrap();
    a.set_sender_key_status("g2@g.us", &[("601:1@s.whatsapp.net", true)])
        .await
        .unwrap();
    b.set_sender_key_status(group, &[("609:0@s.whatsapp.net", true)])
        .await
        .unwrap();
    assert_eq!(
        a.get_sender_key_devices(group).await.unwrap(),
        vec![
            ("601:1@s.whatsapp.net".to_string(), true),
            ("602:0@s.whatsapp.net".to_string(), false)
        ]
    );
    a.set_sender_key_status(group, &[("602:0@s.whatsapp.net", true)])
        .await
        .unwrap();
    assert!(a.get_sender_key_devices(group).await.unwrap()[1].1);
    a.delete_sender_key_device_rows(&["601:1@s.whatsapp.net"])
        .await
        .unwrap();
    assert_eq!(a.get_sender_key_devices(group).await.unwrap().len(), 1);
    assert!(a
        .get_sender_key_devices("g2@g.us")
        .await
        .unwrap()
        .is_empty());
    a.clear_sender_key_devices(group).await.unwrap();
    assert!(a.get_sender_key_devices(group).await.unwrap().is_empty());
    a.set_sender_key_status("g3@g.us", &[("x", true)])
        .await
        .unwrap();
    a.clear_all_sender_key_devices().await.unwrap();
    assert!(a
        .get_sender_key_devices("g3@g.us")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(b.get_sender_key_devices(group).await.unwrap().len(), 1);
}

async fn wa_store_lid_mappings(app: TestApp) {
    let (a, b) = two_stores(&app.db).await;
    let entry = |lid: &str, pn: &str, at: i64| LidPnMappingEntry {
        lid: lid.into(),
        phone_number: pn.into(),
        created_at: at,
        updated_at: at,
        learning_source: "usync".into(),
    };
    a.put_lid_mapping(&entry("100001", "60111", 10))
        .await
        .unwrap();
    a.put_lid_mappings(&[entry("100002", "60111", 20), entry("100003", "60333", 5)])
        .await
        .unwrap();
    b.put_lid_mapping(&entry("100001", "60999", 1))
        .await
        .unwrap();
    assert_eq!(
        a.get_lid_mapping("100001")
            .await
            .unwrap()
            .unwrap()
            .phone_number,
        "60111"
    );
    assert_eq!(
        b.get_lid_mapping("100001")
            .await
            .unwrap()
            .unwrap()
            .phone_number,
        "60999"
    );
    // The most recent LID of a phone wins.
    assert_eq!(
        a.get_pn_mapping("60111").await.unwrap().unwrap().lid,
        "100002"
    );
    assert!(b.get_pn_mapping("60111").await.unwrap().is_none());
    // An update keeps the first-learned time.
    let mut moved = entry("100001", "60444", 30);
    moved.created_at = 30;
    moved.learning_source = "peer_pn_message".into();
    a.put_lid_mapping(&moved).await.unwrap();
    let got = a.get_lid_mapping("100001").await.unwrap().unwrap();
    assert_eq!(
        (
            got.phone_number.as_str(),
            got.created_at,
            got.updated_at,
            got.learning_source.as_str()
        ),
        ("60444", 10, 30, "peer_pn_message")
    );
    assert_eq!(a.get_all_lid_mappings().await.unwrap().len(), 3);
    assert_eq!(b.get_all_lid_mappings().await.unwrap().len(), 1);
}

async fn wa_store_base_keys(app: TestApp) {
    let (a, b) = two_stores(&app.db).await;
    a.save_base_key("addr", "msg1", b"base").await.unwrap();
    assert!(a.has_same_base_key("addr", "msg1", b"base").await.unwrap());
    assert!(!a.has_same_base_key("addr", "msg1", b"other").await.unwrap());
    assert!(!b.has_same_base_key("addr", "msg1", b"base").await.unwrap());
    a.save_base_key("addr", "msg1", b"other").await.unwrap();
    assert!(a.has_same_base_key("addr", "msg1", b"other").await.unwrap());
    a.delete_base_key("addr", "msg1").await.unwrap();
    assert!(!a.has_same_base_key("addr", "msg1", b"other").await.unwrap());
}

async fn wa_store_device_registry(app: TestApp) {
    let (a, b) = two_stores(&app.db).await;
    let record = |user: &str, n: u32| DeviceListRecord {
        user: user.into(),
        devices: (0..n).map(|d| DeviceInfo::new(d, Some(d + 1))).collect(),
        timestamp: i64::from(n),
        phash: Some(format!("2:{n}")),
        raw_id: Some(n),
    };
    a.update_device_list(record("60111", 2)).await.unwrap();
    a.update_device_lists(vec![record("60222", 3), record("60111", 4)])
        .await
        .unwrap();
    let got = a.get_devices("60111").await.unwrap().unwrap();
    assert_eq!(got.devices.len(), 4);
    assert_eq!(got.devices[3].device_id, 3);
    assert_eq!(got.devices[3].key_index, Some(4));
    assert_eq!(
        (got.timestamp, got.phash.as_deref(), got.raw_id),
        (4, Some("2:4"), Some(4))
    );
    assert!(b.get_devices("60111").await.unwrap().is_none());
    a.delete_devices("60111").await.unwrap();
    assert!(a.get_devices("60111").await.unwrap().is_none());
    assert!(a.get_devices("60222").await.unwrap().is_some());
}

async fn wa_store_group_metadata(app: TestApp) {
    let (a, b) = two_stores(&app.db).await;
    let group = "120363021033254949@g.us";
    assert_eq!(a.get_group_metadata(group).await.unwrap(), None);
    a.put_group_metadata(group, b"v1").await.unwrap();
    a.put_group_metadata(group, b"v2").await.unwrap();
    assert_eq!(
        a.get_group_metadata(group).await.unwrap(),
        Some(b"v2".to_vec())
    );
    assert_eq!(b.get_group_metadata(group).await.unwrap(), None);
    a.delete_group_metadata(group).await.unwrap();
    assert_eq!(a.get_group_metadata(group).await.unwrap(), None);
}

async fn wa_store_tc_tokens(app: TestApp) {
    let (a, b) = two_stores(&app.db).await;
    let jid = "100001@lid";
    a.put_tc_token(
        jid,
        &TcTokenEntry {
            token: b"tok".to_vec(),
            token_timestamp: 100,
            sender_timestamp: None,
        },
    )
    .await
    .unwrap();
    // The sender bucket only moves forward and keeps the token.
    a.touch_tc_token_sender_timestamp(jid, 50).await.unwrap();
    a.touch_tc_token_sender_timestamp(jid, 40).await.unwrap();
    let got = a.get_tc_token(jid).await.unwrap().unwrap();
    assert_eq!(
        (
            got.token.as_slice(),
            got.token_timestamp,
            got.sender_timestamp
        ),
        (&b"tok"[..], 100, Some(50))
    );
    // A touch of an unknown contact leaves a placeholder.
    a.touch_tc_token_sender_timestamp("200002@lid", 70)
        .await
        .unwrap();
    let placeholder = a.get_tc_token("200002@lid").await.unwrap().unwrap();
    assert!(placeholder.token.is_empty());
    assert_eq!(placeholder.sender_timestamp, Some(70));
    assert!(b.get_tc_token(jid).await.unwrap().is_none());
    assert_eq!(
        a.get_all_tc_token_jids().await.unwrap(),
        vec!["100001@lid".to_string(), "200002@lid".to_string()]
    );
    // Expiry: a row goes only when both its token and its sender bucket are stale.
    b.put_tc_token(
        jid,
        &TcTokenEntry {
            token: b"b".to_vec(),
            token_timestamp: 1,
            sender_timestamp: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(a.delete_expired_tc_tokens(150, 60).await.unwrap(), 1);
    assert!(a.get_tc_token("200002@lid").await.unwrap().is_some());
    assert!(a.get_tc_token(jid).await.unwrap().is_none());
    assert!(b.get_tc_token(jid).await.unwrap().is_some());
    a.delete_tc_token("200002@lid").await.unwrap();
    assert!(a.get_all_tc_token_jids().await.unwrap().is_empty());
}

async fn wa_store_sent_messages(app: TestApp) {
    let (a, b) = two_stores(&app.db).await;
    let chat = "60111@s.whatsapp.net";
    a.store_sent_message(chat, "3EB0AA", b"payload")
        .await
        .unwrap();
    b.store_sent_message(chat, "3EB0AA", b"other")
        .await
        .unwrap();
    // Take is atomic: the second take finds nothing.
    assert_eq!(
        a.take_sent_message(chat, "3EB0AA").await.unwrap(),
        Some(b"payload".to_vec())
    );
    assert_eq!(a.take_sent_message(chat, "3EB0AA").await.unwrap(), None);
    assert_eq!(
        b.take_sent_message(chat, "3EB0AA").await.unwrap(),
        Some(b"other".to_vec())
    );
    a.store_sent_message(chat, "old", b"x").await.unwrap();
    let future = chrono::Utc::now().timestamp() + 10;
    assert_eq!(b.delete_expired_sent_messages(future).await.unwrap(), 0);
    assert_eq!(a.delete_expired_sent_messages(future).await.unwrap(), 1);
}

async fn wa_store_pending_inbound(app: TestApp) {
    let (a, b) = two_stores(&app.db).await;
    a.store_pending_inbound("chat", "sender", "id1", b"m1")
        .await
        .unwrap();
    a.store_pending_inbound_batch(&[
        PendingInboundRow {
            chat: "chat",
            sender: "sender",
            id: "id2",
            message: b"m2",
        },
        PendingInboundRow {
            chat: "chat",
            sender: "other",
            id: "id1",
            message: b"m3",
        },
    ])
    .await
    .unwrap();
    assert_eq!(
        a.get_pending_inbound("chat", "sender", "id1")
            .await
            .unwrap(),
        Some(b"m1".to_vec())
    );
    assert_eq!(
        a.get_pending_inbound("chat", "other", "id1").await.unwrap(),
        Some(b"m3".to_vec())
    );
    assert_eq!(
        b.get_pending_inbound("chat", "sender", "id1")
            .await
            .unwrap(),
        None
    );
    a.delete_pending_inbound("chat", "sender", "id1")
        .await
        .unwrap();
    a.delete_pending_inbound_batch(&[PendingInboundKey {
        chat: "chat",
        sender: "sender",
        id: "id2",
    }])
    .await
    .unwrap();
    assert_eq!(
        a.get_pending_inbound("chat", "sender", "id2")
            .await
            .unwrap(),
        None
    );
    let future = chrono::Utc::now().timestamp() + 10;
    assert_eq!(a.delete_expired_pending_inbound(future).await.unwrap(), 1);
}

async fn wa_store_msg_secrets(app: TestApp) {
    let (a, b) = two_stores(&app.db).await;
    let entry = |id: &str, secret: u8, expires_at: i64, message_ts: i64| MsgSecretEntry {
        chat: Arc::from("60111@s.whatsapp.net"),
        sender: Arc::from("60222@s.whatsapp.net"),
        msg_id: Arc::from(id),
        secret: [secret; 32],
        expires_at,
        message_ts,
    };
    assert_eq!(
        a.put_msg_secrets(vec![
            entry("m1", 1, 100, 10),
            entry("m2", 2, 0, 0),
            entry("m3", 3, 50, 0)
        ])
        .await
        .unwrap(),
        3
    );
    b.put_msg_secret(
        "60111@s.whatsapp.net",
        "60222@s.whatsapp.net",
        "m1",
        &[9; 32],
    )
    .await
    .unwrap();
    // Merge: the later deadline and the known parent time win; the secret is replaced.
    a.put_msg_secrets(vec![entry("m1", 4, 80, 0)])
        .await
        .unwrap();
    assert_eq!(
        a.get_msg_secret_with_ts("60111@s.whatsapp.net", "60222@s.whatsapp.net", "m1")
            .await
            .unwrap(),
        Some((vec![4; 32], 10))
    );
    assert_eq!(
        b.get_msg_secret("60111@s.whatsapp.net", "60222@s.whatsapp.net", "m1")
            .await
            .unwrap(),
        Some(vec![9; 32])
    );
    // Expiry: m3 (50) goes at 60, m1 (kept at 100) and m2 (never) stay.
    assert_eq!(a.delete_expired_msg_secrets(60).await.unwrap(), 1);
    assert!(a
        .get_msg_secret("60111@s.whatsapp.net", "60222@s.whatsapp.net", "m3")
        .await
        .unwrap()
        .is_none());
    assert!(a
        .get_msg_secret("60111@s.whatsapp.net", "60222@s.whatsapp.net", "m1")
        .await
        .unwrap()
        .is_some());
    assert_eq!(a.delete_expired_msg_secrets(i64::MAX).await.unwrap(), 1);
    assert!(a
        .get_msg_secret("60111@s.whatsapp.net", "60222@s.whatsapp.net", "m2")
        .await
        .unwrap()
        .is_some());
}

async fn wa_store_device_data(app: TestApp) {
    let (a, b) = two_stores(&app.db).await;
    assert!(!a.exists().await.unwrap());
    assert!(a.load().await.unwrap().is_none());
    assert_eq!(a.create().await.unwrap() as i64, a.device_id());
    assert!(a.exists().await.unwrap());
    assert!(!b.exists().await.unwrap());
    let mut device = a.load().await.unwrap().unwrap();
    device.push_name = "Acme Sales".into();
    device.login_counter = 7;
    a.save(&device).await.unwrap();
    let back = a.load().await.unwrap().unwrap();
    assert_eq!(back.push_name, "Acme Sales");
    assert_eq!(back.login_counter, 7);
    // Everything persisted (keys included) comes back as it was saved.
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(&device).unwrap()
    );
    // A second device gets its own keys.
    b.create().await.unwrap();
    let other = b.load().await.unwrap().unwrap();
    assert_ne!(other.adv_secret_key, device.adv_secret_key);
    assert_ne!(other.registration_id, 0);
    // create() never overwrites an existing record.
    a.create().await.unwrap();
    assert_eq!(a.load().await.unwrap().unwrap().push_name, "Acme Sales");
}

/// Fills every table of a device.
async fn fill(store: &WaStore) {
    store.create().await.unwrap();
    store.put_identity("i", [1; 32]).await.unwrap();
    store.put_session("s", b"s").await.unwrap();
    store.store_prekey(1, b"p", true).await.unwrap();
    store.store_signed_prekey(1, b"sp").await.unwrap();
    store.put_sender_key("sk", b"sk").await.unwrap();
    store
        .set_sync_key(
            &[1],
            AppStateSyncKey {
                key_data: vec![1],
                fingerprint: vec![],
                timestamp: 1,
            },
        )
        .await
        .unwrap();
    store
        .set_version("regular", HashState::default())
        .await
        .unwrap();
    store
        .put_mutation_macs(
            "regular",
            1,
            &[AppStateMutationMAC {
                index_mac: vec![1; 32],
                value_mac: vec![2; 32],
            }],
        )
        .await
        .unwrap();
    store
        .set_sender_key_status("g", &[("d", true)])
        .await
        .unwrap();
    store
        .put_lid_mapping(&LidPnMappingEntry {
            lid: "1".into(),
            phone_number: "2".into(),
            created_at: 1,
            updated_at: 1,
            learning_source: "usync".into(),
        })
        .await
        .unwrap();
    store.save_base_key("a", "m", b"k").await.unwrap();
    store
        .update_device_list(DeviceListRecord {
            user: "u".into(),
            devices: vec![DeviceInfo::new(0, None)],
            timestamp: 1,
            phash: None,
            raw_id: None,
        })
        .await
        .unwrap();
    store.put_group_metadata("g", b"m").await.unwrap();
    store.touch_tc_token_sender_timestamp("t", 1).await.unwrap();
    store.store_sent_message("c", "m", b"p").await.unwrap();
    store
        .store_pending_inbound("c", "s", "i", b"m")
        .await
        .unwrap();
    store.put_msg_secret("c", "s", "m", &[1; 32]).await.unwrap();
}

async fn wa_store_wipe_and_delete_remove_every_row(app: TestApp) {
    let db = &app.db;
    let (tenant_id, a, b) = tenant_and_stores(db).await;
    fill(&a).await;
    fill(&b).await;
    assert_eq!(
        count_device_rows(db, a.device_id()).await.unwrap(),
        18,
        "one row per table"
    );
    assert_eq!(count_device_rows(db, b.device_id()).await.unwrap(), 18);

    // Logout: one transaction, nothing of the other device touched.
    wipe_device(db, a.device_id()).await.unwrap();
    assert_eq!(count_device_rows(db, a.device_id()).await.unwrap(), 0);
    assert_eq!(count_device_rows(db, b.device_id()).await.unwrap(), 18);
    assert!(!a.exists().await.unwrap());

    // Deleting a device takes its rows with it.
    devices::delete_device(db, tenant_id, b.device_id())
        .await
        .unwrap();
    assert_eq!(count_device_rows(db, b.device_id()).await.unwrap(), 0);
}

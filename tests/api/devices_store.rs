//! The device store end to end through the `Db` layer, on both backends: the proof that one
//! query path serves SQLite and PostgreSQL.

use wafleet::auth::store::insert_tenant;
use wafleet::db::DbError;
use wafleet::device::model::{DeviceFilter, DeviceStatusPatch};
use wafleet::device::store;
use wafleet::device::DeviceStatus;

use crate::helpers::TestApp;

crate::both_backends!(
    device_store_round_trip,
    device_store_is_tenant_scoped,
    device_list_filters_and_pages
);

async fn device_store_round_trip(app: TestApp) {
    let db = &app.db;
    let tenant = insert_tenant(db, "Acme", "Asia/Kuala_Lumpur")
        .await
        .unwrap();
    let created = store::insert_device(db, tenant.id, "Sales 1")
        .await
        .unwrap();
    assert_eq!(created.status, "new");
    assert_eq!(created.tenant_id, tenant.id);
    assert_eq!(
        store::get_device(db, tenant.id, created.id).await.unwrap(),
        created
    );

    let renamed = store::rename_device(db, tenant.id, created.id, "Support")
        .await
        .unwrap();
    assert_eq!(renamed.name, "Support");
    assert!(renamed.updated_at >= created.updated_at);

    let seen = chrono::Utc::now().naive_utc();
    store::update_status(
        db,
        created.id,
        DeviceStatusPatch {
            status: Some(DeviceStatus::Online.as_str().into()),
            status_reason: Some(None),
            jid: Some(Some("60123456789:3@s.whatsapp.net".into())),
            phone: Some(Some("60123456789".into())),
            push_name: Some(Some("Acme Sales".into())),
            last_seen: Some(Some(seen)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let online = store::get_device(db, tenant.id, created.id).await.unwrap();
    assert_eq!(online.status, "online");
    assert_eq!(online.phone.as_deref(), Some("60123456789"));
    assert_eq!(online.push_name.as_deref(), Some("Acme Sales"));
    let stored_seen = online.last_seen.unwrap();
    assert!(
        (stored_seen - seen).num_milliseconds().abs() < 1,
        "{stored_seen} vs {seen}"
    );

    assert_eq!(
        store::count_by_status(db, tenant.id, None).await.unwrap(),
        vec![("online".to_string(), 1)]
    );
    store::delete_device(db, tenant.id, created.id)
        .await
        .unwrap();
    assert!(matches!(
        store::get_device(db, tenant.id, created.id).await,
        Err(DbError::NotFound)
    ));
    assert!(matches!(
        store::delete_device(db, tenant.id, created.id).await,
        Err(DbError::NotFound)
    ));
    assert!(matches!(
        store::update_status(db, created.id, DeviceStatusPatch::default()).await,
        Err(DbError::NotFound)
    ));
}

async fn device_store_is_tenant_scoped(app: TestApp) {
    let db = &app.db;
    let acme = insert_tenant(db, "Acme", "Asia/Kuala_Lumpur")
        .await
        .unwrap();
    let other = insert_tenant(db, "Other", "Europe/Berlin").await.unwrap();
    let device = store::insert_device(db, acme.id, "Sales").await.unwrap();
    assert!(matches!(
        store::get_device(db, other.id, device.id).await,
        Err(DbError::NotFound)
    ));
    assert!(matches!(
        store::rename_device(db, other.id, device.id, "x").await,
        Err(DbError::NotFound)
    ));
    assert!(matches!(
        store::delete_device(db, other.id, device.id).await,
        Err(DbError::NotFound)
    ));
    let (list, total) = store::list_devices(db, other.id, &DeviceFilter::default(), 50, 0)
        .await
        .unwrap();
    assert!(list.is_empty());
    assert_eq!(total, 0);
    assert_eq!(
        store::get_device(db, acme.id, device.id)
            .await
            .unwrap()
            .name,
        "Sales"
    );
}

async fn device_list_filters_and_pages(app: TestApp) {
    let db = &app.db;
    let tenant = insert_tenant(db, "Acme", "Asia/Kuala_Lumpur")
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..25 {
        let name = if i % 5 == 0 {
            format!("Sales_{i}")
        } else {
            format!("Support {i}")
        };
        ids.push(store::insert_device(db, tenant.id, &name).await.unwrap().id);
    }
    store::update_status(
        db,
        ids[3],
        DeviceStatusPatch {
            status: Some("online".into()),
            phone: Some(Some("60111".into())),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let (page, total) = store::list_devices(db, tenant.id, &DeviceFilter::default(), 10, 20)
        .await
        .unwrap();
    assert_eq!(total, 25);
    assert_eq!(
        page.iter().map(|d| d.id).collect::<Vec<_>>(),
        ids[20..].to_vec()
    );

    let search = DeviceFilter {
        search: Some("SALES".into()),
        ..Default::default()
    };
    let (found, total) = store::list_devices(db, tenant.id, &search, 50, 0)
        .await
        .unwrap();
    assert_eq!(total, 5, "case-insensitive name search");
    assert!(found.iter().all(|d| d.name.starts_with("Sales_")));

    // `_` is a LIKE wildcard; searching for it literally must not match every name.
    let underscore = DeviceFilter {
        search: Some("_".into()),
        ..Default::default()
    };
    assert_eq!(
        store::list_devices(db, tenant.id, &underscore, 50, 0)
            .await
            .unwrap()
            .1,
        5
    );

    let by_phone = DeviceFilter {
        search: Some("6011".into()),
        ..Default::default()
    };
    assert_eq!(
        store::list_devices(db, tenant.id, &by_phone, 50, 0)
            .await
            .unwrap()
            .0[0]
            .id,
        ids[3]
    );

    let online = DeviceFilter {
        status: Some(DeviceStatus::Online),
        ..Default::default()
    };
    assert_eq!(
        store::list_devices(db, tenant.id, &online, 50, 0)
            .await
            .unwrap()
            .1,
        1
    );

    let assigned = DeviceFilter {
        only_ids: Some(vec![ids[0], ids[7]]),
        ..Default::default()
    };
    let (mine, total) = store::list_devices(db, tenant.id, &assigned, 50, 0)
        .await
        .unwrap();
    assert_eq!(total, 2);
    assert_eq!(
        mine.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![ids[0], ids[7]]
    );
}

crate::both_backends!(interrupted_pairings_are_reset_at_boot);

async fn interrupted_pairings_are_reset_at_boot(app: TestApp) {
    let db = &app.db;
    let tenant = insert_tenant(db, "Acme", "UTC").await.unwrap();
    let pairing = store::insert_device(db, tenant.id, "pairing")
        .await
        .unwrap();
    let paired = store::insert_device(db, tenant.id, "paired").await.unwrap();
    let qr = DeviceStatusPatch {
        status: Some("awaiting_qr".into()),
        ..Default::default()
    };
    store::update_status(db, pairing.id, qr.clone())
        .await
        .unwrap();
    let online = DeviceStatusPatch {
        status: Some("reconnecting".into()),
        jid: Some(Some("6011:1@s.whatsapp.net".into())),
        ..Default::default()
    };
    store::update_status(db, paired.id, online).await.unwrap();
    let reset_now = store::reset_interrupted_pairings(db).await.unwrap();
    // On PostgreSQL the running daemon is a cluster node, and its leader sweep resets a pairing
    // no node holds too: it may have come first.
    let swept = matches!(db, wafleet::db::Db::Postgres(_)) && reset_now == 0;
    assert!(reset_now == 1 || swept, "{reset_now}");
    let reset = store::get_device(db, tenant.id, pairing.id).await.unwrap();
    assert_eq!(reset.status, "new");
    assert!(reset.status_reason.unwrap().contains("interrupted"));
    assert_eq!(
        store::get_device(db, tenant.id, paired.id)
            .await
            .unwrap()
            .status,
        "reconnecting"
    );
}

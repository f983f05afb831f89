//! Demo mode (`wafleet --simulate N`): N simulated devices in the admin's tenant, so a newcomer
//! sees a live fleet without a phone.

use super::model::DeviceFilter;
use super::{store, Device};
use crate::auth::store as accounts;
use crate::config::Settings;
use crate::db::{Db, DbError};

/// Creates the missing `Demo <n>` devices up to `count` in the admin's tenant and returns the
/// devices that are not paired yet (the caller starts them; paired ones start at boot).
pub async fn ensure_demo_devices(
    db: &Db,
    settings: &Settings,
    count: u32,
) -> Result<Vec<Device>, DbError> {
    let admin = accounts::find_user_by_email(db, &settings.admin.email)
        .await?
        .ok_or(DbError::NotFound)?;
    let tenant_id = admin.tenant_id.ok_or(DbError::NotFound)?;
    let (existing, total) =
        store::list_devices(db, tenant_id, &DeviceFilter::default(), i64::from(count), 0).await?;
    let mut unpaired: Vec<Device> = existing.into_iter().filter(|d| d.jid.is_none()).collect();
    for n in total..i64::from(count) {
        unpaired.push(store::insert_device(db, tenant_id, &format!("Demo {}", n + 1)).await?);
    }
    tracing::info!(
        devices = count,
        pairing = unpaired.len(),
        "demo fleet ready"
    );
    Ok(unpaired)
}

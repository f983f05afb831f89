//! `DeviceStore`: the device record itself (identity keys, registration, push name), one
//! row per device in its serde JSON form, keyed by our device id.

use whatsapp_rust::wacore::stats::StorageResourceReport;
use whatsapp_rust::wacore::store::traits::DeviceStore;
use whatsapp_rust::wacore::store::Device;

use super::kv::*;

#[async_trait]
impl DeviceStore for WaStore {
    async fn save(&self, device: &Device) -> Result<()> {
        let data = to_blob(device)?;
        let now = now_secs();
        upsert!(self, wa_device[] set [data = &data, updated_at = now])
    }

    async fn load(&self) -> Result<Option<Device>> {
        let data: Option<Vec<u8>> = find!(self, wa_device[] => data)?;
        data.map(|data| from_blob(&data)).transpose()
    }

    async fn exists(&self) -> Result<bool> {
        let found: Option<i64> = find!(self, wa_device[] => device_id)?;
        Ok(found.is_some())
    }

    /// Creates the device record with fresh keys under our device id (not a generated one:
    /// the store is keyed by the id the daemon already has).
    async fn create(&self) -> Result<i32> {
        let data = to_blob(&Device::new())?;
        let now = now_secs();
        fenced!(self, |conn, id| {
            insert!(id, wa_device[data = &data, updated_at = now])
                .on_conflict_do_nothing()
                .execute(conn)
                .await
        })?;
        let id = self.device_id;
        i32::try_from(id).map_err(|_| StoreError::Validation(format!("device id {id} too large")))
    }

    /// The data lives in the shared database, not in this session's memory.
    async fn resource_report(&self) -> StorageResourceReport {
        StorageResourceReport {
            memory_bytes: Some(0),
            ..Default::default()
        }
    }
}

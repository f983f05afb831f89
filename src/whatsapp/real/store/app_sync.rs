//! `AppSyncStore`: one device's app-state sync keys, collection versions (both in their serde
//! JSON form) and mutation MACs.

use std::collections::HashMap;

use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::store::traits::{AppStateSyncKey, AppSyncStore};

use super::kv::*;

#[async_trait]
impl AppSyncStore for WaStore {
    async fn get_sync_key(&self, key_id: &[u8]) -> Result<Option<AppStateSyncKey>> {
        let data: Option<Vec<u8>> = find!(self, wa_app_state_keys[key_id.eq(key_id)] => key_data)?;
        data.map(|data| from_blob(&data)).transpose()
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> Result<()> {
        let data = to_blob(&key)?;
        upsert!(self, wa_app_state_keys[key_id = key_id] set [key_data = &data])
    }

    async fn get_version(&self, name: &str) -> Result<HashState> {
        let data: Option<Vec<u8>> =
            find!(self, wa_app_state_versions[name.eq(name)] => state_data)?;
        data.map_or_else(|| Ok(HashState::default()), |data| from_blob(&data))
    }

    async fn set_version(&self, name: &str, state: HashState) -> Result<()> {
        let data = to_blob(&state)?;
        upsert!(self, wa_app_state_versions[name = name] set [state_data = &data])
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> Result<()> {
        if mutations.is_empty() {
            return Ok(()); // before the version check: an empty batch stores nothing
        }
        let version = i64::try_from(version)
            .map_err(|_| StoreError::Validation("app-state version out of range".into()))?;
        upsert!(self, for m in mutations
            => wa_app_state_mutation_macs[name = name, index_mac = &m.index_mac]
                set [version = version, value_mac = &m.value_mac])
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        find!(self, wa_app_state_mutation_macs[name.eq(name), index_mac.eq(index_mac)] => value_mac)
    }

    async fn get_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> Result<HashMap<[u8; 32], Vec<u8>>> {
        if index_macs.is_empty() {
            return Ok(HashMap::new());
        }
        let wanted: Vec<Vec<u8>> = index_macs.iter().map(|m| m.to_vec()).collect();
        let rows: Vec<(Vec<u8>, Vec<u8>)> = load!(self,
            wa_app_state_mutation_macs[name.eq(name), index_mac.eq_any(&wanted)]
            => (index_mac, value_mac))?;
        rows.into_iter()
            .map(|(index, value)| Ok((key32(&index)?, value)))
            .collect()
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        if index_macs.is_empty() {
            return Ok(());
        }
        delete!(self, wa_app_state_mutation_macs[name.eq(name), index_mac.eq_any(index_macs)])
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        delete!(self, wa_app_state_mutation_macs[name.eq(name)])
    }

    /// The highest key id whose blob decodes (as whatsapp-rust's own store does: an
    /// undecodable row must not be chosen for outbound patches).
    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        let rows: Vec<(Vec<u8>, Vec<u8>)> =
            load!(self, wa_app_state_keys[] order key_id.desc() => (key_id, key_data))?;
        Ok(rows
            .into_iter()
            .find(|(_, data)| from_blob::<AppStateSyncKey>(data).is_ok())
            .map(|(key_id, _)| key_id))
    }
}

//! Diesel table definitions of the `wa_` session-store tables (migration
//! `2026-11-25-000005_wa_store`), kept apart from `crate::db::schema` because only the real
//! connector's store touches them.
//!
//! `wa_tables!` below is the one list of those tables: it declares each table and generates
//! `for_each_wa_table!`, over which [`super::wipe_device`] and [`super::count_device_rows`]
//! expand, so no table can be left out of either. Every key starts with our `device_id`
//! (`BigInt`), which the macro adds; each entry lists the rest of its key, then its columns.
#![allow(missing_docs)]

/// Declares every `wa_` table and `for_each_wa_table!($m)`, which expands to `$m!(table);`
/// once per table.
macro_rules! wa_tables {
    ($($table:ident ($($key:ident),*) { $($column:tt)* })+) => {
        $(diesel::table! { $table (device_id $(, $key)*) { device_id -> BigInt, $($column)* } })+
        /// Expands `$m!(table);` for every `wa_` table, in declaration order.
        macro_rules! for_each_wa_table {
            ($m:ident) => { $($m!($table);)+ };
        }
    };
}

wa_tables! {
    wa_device () { data -> Binary, updated_at -> BigInt }
    wa_identities (address) { address -> Text, key -> Binary }
    wa_sessions (address) { address -> Text, record -> Binary }
    wa_prekeys (key_id) { key_id -> BigInt, record -> Binary, uploaded -> Bool }
    wa_signed_prekeys (key_id) { key_id -> BigInt, record -> Binary }
    wa_sender_keys (address) { address -> Text, record -> Binary }
    wa_app_state_keys (key_id) { key_id -> Binary, key_data -> Binary }
    wa_app_state_versions (name) { name -> Text, state_data -> Binary }
    wa_app_state_mutation_macs (name, index_mac) {
        name -> Text, index_mac -> Binary, version -> BigInt, value_mac -> Binary
    }
    wa_sender_key_devices (group_jid, device_jid) {
        group_jid -> Text, device_jid -> Text, has_key -> Bool, updated_at -> BigInt
    }
    wa_lid_pn_mapping (lid) {
        lid -> Text, phone_number -> Text, created_at -> BigInt, updated_at -> BigInt,
        learning_source -> Text
    }
    wa_base_keys (address, message_id) {
        address -> Text, message_id -> Text, base_key -> Binary, created_at -> BigInt
    }
    wa_device_registry (user_id) {
        user_id -> Text, devices_json -> Text, timestamp -> BigInt, phash -> Nullable<Text>,
        raw_id -> Nullable<BigInt>, updated_at -> BigInt
    }
    wa_group_metadata (group_jid) { group_jid -> Text, info -> Binary, updated_at -> BigInt }
    wa_tc_tokens (jid) {
        jid -> Text, token -> Binary, token_timestamp -> BigInt,
        sender_timestamp -> Nullable<BigInt>, updated_at -> BigInt
    }
    wa_sent_messages (chat_jid, message_id) {
        chat_jid -> Text, message_id -> Text, payload -> Binary, created_at -> BigInt
    }
    wa_pending_inbound (chat, sender, message_id) {
        chat -> Text, sender -> Text, message_id -> Text, message -> Binary, inserted_at -> BigInt
    }
    wa_msg_secrets (chat, sender, msg_id) {
        chat -> Text, sender -> Text, msg_id -> Text, secret -> Binary, created_at -> BigInt,
        expires_at -> BigInt, message_ts -> BigInt
    }
}

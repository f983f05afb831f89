//! Diesel table definitions of the `wa_` session-store tables (migration
//! `2026-11-25-000005_wa_store`). Kept here, apart from `crate::db::schema`, because only the
//! real connector's store touches them. Every table's key starts with our `device_id`.
#![allow(missing_docs)]

diesel::table! {
    wa_device (device_id) {
        device_id -> BigInt,
        data -> Binary,
        updated_at -> BigInt,
    }
}

diesel::table! {
    wa_identities (device_id, address) {
        device_id -> BigInt,
        address -> Text,
        key -> Binary,
    }
}

diesel::table! {
    wa_sessions (device_id, address) {
        device_id -> BigInt,
        address -> Text,
        record -> Binary,
    }
}

diesel::table! {
    wa_prekeys (device_id, key_id) {
        device_id -> BigInt,
        key_id -> BigInt,
        record -> Binary,
        uploaded -> Bool,
    }
}

diesel::table! {
    wa_signed_prekeys (device_id, key_id) {
        device_id -> BigInt,
        key_id -> BigInt,
        record -> Binary,
    }
}

diesel::table! {
    wa_sender_keys (device_id, address) {
        device_id -> BigInt,
        address -> Text,
        record -> Binary,
    }
}

diesel::table! {
    wa_app_state_keys (device_id, key_id) {
        device_id -> BigInt,
        key_id -> Binary,
        key_data -> Binary,
    }
}

diesel::table! {
    wa_app_state_versions (device_id, name) {
        device_id -> BigInt,
        name -> Text,
        state_data -> Binary,
    }
}

diesel::table! {
    wa_app_state_mutation_macs (device_id, name, index_mac) {
        device_id -> BigInt,
        name -> Text,
        index_mac -> Binary,
        version -> BigInt,
        value_mac -> Binary,
    }
}

diesel::table! {
    wa_sender_key_devices (device_id, group_jid, device_jid) {
        device_id -> BigInt,
        group_jid -> Text,
        device_jid -> Text,
        has_key -> Bool,
        updated_at -> BigInt,
    }
}

diesel::table! {
    wa_lid_pn_mapping (device_id, lid) {
        device_id -> BigInt,
        lid -> Text,
        phone_number -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        learning_source -> Text,
    }
}

diesel::table! {
    wa_base_keys (device_id, address, message_id) {
        device_id -> BigInt,
        address -> Text,
        message_id -> Text,
        base_key -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    wa_device_registry (device_id, user_id) {
        device_id -> BigInt,
        user_id -> Text,
        devices_json -> Text,
        timestamp -> BigInt,
        phash -> Nullable<Text>,
        raw_id -> Nullable<BigInt>,
        updated_at -> BigInt,
    }
}

diesel::table! {
    wa_group_metadata (device_id, group_jid) {
        device_id -> BigInt,
        group_jid -> Text,
        info -> Binary,
        updated_at -> BigInt,
    }
}

diesel::table! {
    wa_tc_tokens (device_id, jid) {
        device_id -> BigInt,
        jid -> Text,
        token -> Binary,
        token_timestamp -> BigInt,
        sender_timestamp -> Nullable<BigInt>,
        updated_at -> BigInt,
    }
}

diesel::table! {
    wa_sent_messages (device_id, chat_jid, message_id) {
        device_id -> BigInt,
        chat_jid -> Text,
        message_id -> Text,
        payload -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    wa_pending_inbound (device_id, chat, sender, message_id) {
        device_id -> BigInt,
        chat -> Text,
        sender -> Text,
        message_id -> Text,
        message -> Binary,
        inserted_at -> BigInt,
    }
}

diesel::table! {
    wa_msg_secrets (device_id, chat, sender, msg_id) {
        device_id -> BigInt,
        chat -> Text,
        sender -> Text,
        msg_id -> Text,
        secret -> Binary,
        created_at -> BigInt,
        expires_at -> BigInt,
        message_ts -> BigInt,
    }
}

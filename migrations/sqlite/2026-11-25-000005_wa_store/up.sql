-- whatsapp-rust's session store (issue 7): its 18 tables, every key led by our device id, so
-- one database (one pool) serves every device. Rows go with their device (ON DELETE CASCADE);
-- logout wipes them explicitly in one transaction (src/whatsapp/real/store).

-- The linked-device record (keys, account, app version) as whatsapp-rust's serde form.
CREATE TABLE wa_device (
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    data BLOB NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (device_id)
);

-- Remote identity keys (Signal), one per address.
CREATE TABLE wa_identities (
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    key BLOB NOT NULL,
    PRIMARY KEY (device_id, address)
);

-- Signal sessions, one per remote address.
CREATE TABLE wa_sessions (
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    record BLOB NOT NULL,
    PRIMARY KEY (device_id, address)
);

-- One-time pre-keys and whether the server has them.
CREATE TABLE wa_prekeys (
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    key_id BIGINT NOT NULL,
    record BLOB NOT NULL,
    uploaded BOOLEAN NOT NULL,
    PRIMARY KEY (device_id, key_id)
);

-- Signed pre-keys.
CREATE TABLE wa_signed_prekeys (
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    key_id BIGINT NOT NULL,
    record BLOB NOT NULL,
    PRIMARY KEY (device_id, key_id)
);

-- Group sender keys, one per (group, sender) address.
CREATE TABLE wa_sender_keys (
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    record BLOB NOT NULL,
    PRIMARY KEY (device_id, address)
);

-- App-state sync keys (serde form of AppStateSyncKey).
CREATE TABLE wa_app_state_keys (
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    key_id BLOB NOT NULL,
    key_data BLOB NOT NULL,
    PRIMARY KEY (device_id, key_id)
);

-- App-state collection versions (serde form of HashState).
CREATE TABLE wa_app_state_versions (
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    state_data BLOB NOT NULL,
    PRIMARY KEY (device_id, name)
);

-- App-state mutation MACs by index MAC.
CREATE TABLE wa_app_state_mutation_macs (
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    index_mac BLOB NOT NULL,
    version BIGINT NOT NULL,
    value_mac BLOB NOT NULL,
    PRIMARY KEY (device_id, name, index_mac)
);

-- Which devices of a group hold our sender key.
CREATE TABLE wa_sender_key_devices (
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    group_jid TEXT NOT NULL,
    device_jid TEXT NOT NULL,
    has_key BOOLEAN NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, group_jid, device_jid)
);
CREATE INDEX wa_sender_key_devices_jid_idx ON wa_sender_key_devices (device_id, device_jid);

-- LID to phone-number mappings.
CREATE TABLE wa_lid_pn_mapping (
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    lid TEXT NOT NULL,
    phone_number TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    learning_source TEXT NOT NULL,
    PRIMARY KEY (device_id, lid)
);
CREATE INDEX wa_lid_pn_mapping_phone_idx ON wa_lid_pn_mapping (device_id, phone_number, updated_at);

-- Base keys saved for retry collision detection.
CREATE TABLE wa_base_keys (
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    message_id TEXT NOT NULL,
    base_key BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, address, message_id)
);

-- Known devices of each user (usync).
CREATE TABLE wa_device_registry (
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    devices_json TEXT NOT NULL,
    timestamp BIGINT NOT NULL,
    phash TEXT,
    raw_id BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, user_id)
);

-- Serialized group metadata (participant-hash re-query skip).
CREATE TABLE wa_group_metadata (
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    group_jid TEXT NOT NULL,
    info BLOB NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, group_jid)
);

-- Trusted-contact privacy tokens.
CREATE TABLE wa_tc_tokens (
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    jid TEXT NOT NULL,
    token BLOB NOT NULL,
    token_timestamp BIGINT NOT NULL,
    sender_timestamp BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, jid)
);

-- Sent message payloads kept for retry receipts.
CREATE TABLE wa_sent_messages (
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    chat_jid TEXT NOT NULL,
    message_id TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, chat_jid, message_id)
);
CREATE INDEX wa_sent_messages_created_idx ON wa_sent_messages (device_id, created_at);

-- Decrypted inbound messages awaiting a durability-hook commit.
CREATE TABLE wa_pending_inbound (
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    chat TEXT NOT NULL,
    sender TEXT NOT NULL,
    message_id TEXT NOT NULL,
    message BLOB NOT NULL,
    inserted_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, chat, sender, message_id)
);

-- Per-message secrets (poll votes, reactions, edits).
CREATE TABLE wa_msg_secrets (
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    chat TEXT NOT NULL,
    sender TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    secret BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    message_ts BIGINT NOT NULL,
    PRIMARY KEY (device_id, chat, sender, msg_id)
);
CREATE INDEX wa_msg_secrets_expires_idx ON wa_msg_secrets (device_id, expires_at);

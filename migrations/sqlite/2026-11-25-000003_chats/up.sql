-- Chats and messages mirrored from the devices. One chat per (device, contact JID); one message
-- per (device, WhatsApp message id), so replays and history syncs never duplicate.
CREATE TABLE chats (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    jid TEXT NOT NULL,
    name TEXT,
    last_message_text TEXT,
    last_message_at TIMESTAMP,
    unread_count BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (device_id, jid)
);
CREATE INDEX chats_device_activity_idx ON chats (device_id, last_message_at);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    chat_id BIGINT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    wa_id TEXT NOT NULL,
    sender_jid TEXT NOT NULL,
    sender_name TEXT,
    from_me BOOLEAN NOT NULL,
    body TEXT,
    media_mime TEXT,
    media_size BIGINT,
    -- SHA-256 of the media file, stored content-addressed under chat.media_dir.
    media_sha256 TEXT,
    status TEXT NOT NULL,
    sent_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (device_id, wa_id)
);
CREATE INDEX messages_chat_time_idx ON messages (chat_id, sent_at, id);
CREATE INDEX messages_media_idx ON messages (media_sha256);

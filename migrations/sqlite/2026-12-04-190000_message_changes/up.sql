-- Replies keep what they quote (the original may be older than the mirror), edits and
-- deletions for everyone are marked, and reactions live beside the messages they react to.
ALTER TABLE messages ADD COLUMN quoted_id TEXT;
ALTER TABLE messages ADD COLUMN quoted_sender TEXT;
ALTER TABLE messages ADD COLUMN quoted_text TEXT;
ALTER TABLE messages ADD COLUMN edited_at TIMESTAMP;
ALTER TABLE messages ADD COLUMN revoked_at TIMESTAMP;
-- How to download received media not stored yet (lazy downloads, failed ones, history syncs);
-- cleared once the file is stored.
ALTER TABLE messages ADD COLUMN media_ref TEXT;

-- One reaction per person per message (a new one replaces it; an empty one removes it).
CREATE TABLE reactions (
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    -- The WhatsApp id of the message reacted to.
    message_wa_id TEXT NOT NULL,
    -- Who reacted (a phone JID once known; this device's own JID for its reactions).
    sender_jid TEXT NOT NULL,
    emoji TEXT NOT NULL,
    -- This device (or its phone) reacted.
    from_me BOOLEAN NOT NULL DEFAULT FALSE,
    reacted_at TIMESTAMP NOT NULL,
    PRIMARY KEY (device_id, message_wa_id, sender_jid)
);

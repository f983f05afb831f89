DROP TABLE reactions;
ALTER TABLE messages DROP COLUMN media_ref;
ALTER TABLE messages DROP COLUMN revoked_at;
ALTER TABLE messages DROP COLUMN edited_at;
ALTER TABLE messages DROP COLUMN quoted_text;
ALTER TABLE messages DROP COLUMN quoted_sender;
ALTER TABLE messages DROP COLUMN quoted_id;

-- Campaigns and sequence steps may send a document, video, voice note or audio file as well as a
-- picture. The file stays in the media store under image_sha256; what it is, when not a picture,
-- is this JSON ({"kind","mime","file_name"}), copied onto each outbox row that sends it.
ALTER TABLE campaigns ADD COLUMN attachment TEXT;
ALTER TABLE sequence_steps ADD COLUMN attachment TEXT;
ALTER TABLE outbox ADD COLUMN attachment TEXT;

ALTER TABLE outbox DROP COLUMN attachment;
ALTER TABLE sequence_steps DROP COLUMN attachment;
ALTER TABLE campaigns DROP COLUMN attachment;

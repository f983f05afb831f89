ALTER TABLE sequence_steps DROP COLUMN reply_sequence_id;
ALTER TABLE sequence_steps DROP COLUMN reply_keyword;
ALTER TABLE sequence_steps DROP COLUMN reply_action;

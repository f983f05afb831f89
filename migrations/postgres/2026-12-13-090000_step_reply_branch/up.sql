-- A sequence step may branch on the lead's reply to it: continue with the next step, stop, or
-- jump to another sequence of the tenant (reply_sequence_id), for any reply or only one that
-- contains reply_keyword (a word, compared without case). No rule (NULL): the sequence's
-- stop_on_reply decides, as before. The jump target is checked when the step is saved and again
-- when a reply comes (it may have been deleted since: then the sequence's default applies), so
-- it carries no foreign key (SQLite cannot drop a column that has one).
ALTER TABLE sequence_steps ADD COLUMN reply_action TEXT CHECK (reply_action IN ('continue', 'stop', 'jump'));
ALTER TABLE sequence_steps ADD COLUMN reply_keyword TEXT;
ALTER TABLE sequence_steps ADD COLUMN reply_sequence_id BIGINT;

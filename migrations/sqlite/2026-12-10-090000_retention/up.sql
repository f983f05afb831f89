-- Retention ([retention] settings): the sweep deletes rows by age, so those ages are indexed,
-- and the outbox rows it deletes leave their counts behind, so a finished campaign's progress
-- and a sequence's report read the same afterwards.
CREATE INDEX messages_sent_idx ON messages (sent_at);
CREATE INDEX audit_log_created_idx ON audit_log (created_at);

-- Counts of deleted outbox rows, added to the live rows' counts wherever those are reported.
CREATE TABLE outbox_tallies (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    -- The device the rows went through; 0 for rows that had none (ids start at 1).
    device_id BIGINT NOT NULL,
    -- The sequence step the rows carried (0 for campaigns).
    step BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('sent', 'delivered', 'read', 'failed', 'skipped')),
    n BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, device_id, step, status)
);

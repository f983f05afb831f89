DROP INDEX leads_tenant_updated_idx;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_secrets;
DROP TABLE sequence_enrollments;
DROP TABLE sequence_steps;
DROP TABLE sequences;
CREATE TABLE outbox_v1 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    lead_id BIGINT REFERENCES leads (id) ON DELETE SET NULL,
    device_id BIGINT REFERENCES devices (id) ON DELETE SET NULL,
    phone TEXT NOT NULL,
    body TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'delivered', 'read', 'failed', 'skipped')),
    attempts BIGINT NOT NULL,
    lease_until TIMESTAMP,
    error TEXT,
    sent_at TIMESTAMP,
    delivered_at TIMESTAMP,
    read_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (campaign_id, lead_id)
);
INSERT INTO outbox_v1 (id, tenant_id, campaign_id, lead_id, device_id, phone, body, message_id, status, attempts, lease_until, error, sent_at, delivered_at, read_at, created_at) SELECT id, tenant_id, campaign_id, lead_id, device_id, phone, body, message_id, status, attempts, lease_until, error, sent_at, delivered_at, read_at, created_at FROM outbox WHERE step = 0;
DROP TABLE outbox;
ALTER TABLE outbox_v1 RENAME TO outbox;
CREATE INDEX outbox_claim_idx ON outbox (campaign_id, device_id, status, id);
CREATE INDEX outbox_device_sent_idx ON outbox (device_id, sent_at);
CREATE INDEX outbox_tenant_phone_idx ON outbox (tenant_id, phone);
DELETE FROM campaigns WHERE kind = 'sequence';
ALTER TABLE campaigns DROP COLUMN per_device_limit;
ALTER TABLE campaigns DROP COLUMN kind;

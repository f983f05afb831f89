-- Sequences, AI lead distribution and inbound lead webhooks.
-- Campaigns get a kind ('broadcast', 'ai' = lead distribution with a per-device limit,
-- 'sequence' = the hidden carrier of a sequence's sends); outbox rows get the sequence step they
-- carry (0 for campaigns) and a picture of their own.
ALTER TABLE campaigns ADD COLUMN kind TEXT NOT NULL DEFAULT 'broadcast' CHECK (kind IN ('broadcast', 'ai', 'sequence'));
ALTER TABLE campaigns ADD COLUMN per_device_limit BIGINT;
ALTER TABLE outbox ADD COLUMN step BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN image_sha256 TEXT;
ALTER TABLE outbox DROP CONSTRAINT outbox_campaign_id_lead_id_key;
ALTER TABLE outbox ADD CONSTRAINT outbox_campaign_lead_step_key UNIQUE (campaign_id, lead_id, step);

-- Drip sequences: ordered steps sent to each enrolled lead on its own schedule.
CREATE TABLE sequences (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- The hidden campaign (kind 'sequence') whose outbox and lanes carry this sequence's sends.
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    -- A lead that gets this tag is enrolled (lower case, no commas).
    trigger_tag TEXT,
    -- An inbound message from an enrolled lead stops its future steps.
    stop_on_reply BOOLEAN NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'paused')),
    -- Leads that complete this sequence are enrolled in that one (COLD → WARM → HOT).
    next_sequence_id BIGINT REFERENCES sequences (id) ON DELETE SET NULL,
    created_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE INDEX sequences_trigger_idx ON sequences (tenant_id, trigger_tag);

CREATE TABLE sequence_steps (
    id BIGSERIAL PRIMARY KEY,
    sequence_id BIGINT NOT NULL REFERENCES sequences (id) ON DELETE CASCADE,
    -- 1, 2, 3 … in sending order.
    position BIGINT NOT NULL,
    -- Text with {name}-style variables and {a|b} spintax (the caption when there is a picture).
    message TEXT NOT NULL,
    image_sha256 TEXT,
    -- Wait after the previous step was sent (after enrolment for step 1).
    delay_minutes BIGINT NOT NULL,
    -- Optional daily send window in the tenant's zone, "HH:MM" each.
    window_start TEXT,
    window_end TEXT,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (sequence_id, position)
);

-- One lead in one sequence (at most once): waiting → active → waiting … → completed | stopped | failed.
CREATE TABLE sequence_enrollments (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    sequence_id BIGINT NOT NULL REFERENCES sequences (id) ON DELETE CASCADE,
    lead_id BIGINT NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    device_id BIGINT REFERENCES devices (id) ON DELETE SET NULL,
    phone TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('waiting', 'active', 'completed', 'stopped', 'failed')),
    -- The step due next (waiting) or being sent (active); past the last step when completed.
    step BIGINT NOT NULL,
    -- When the waiting step is due.
    next_due_at TIMESTAMP,
    -- Why it stopped or failed ("replied", "opted out", "sequence deleted step", …).
    reason TEXT,
    -- The first inbound message after enrolment, and the last step sent before it.
    replied_at TIMESTAMP,
    replied_after_step BIGINT,
    -- How it got here: "tag", "manual", "chain".
    source TEXT NOT NULL,
    enrolled_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (sequence_id, lead_id)
);
CREATE INDEX sequence_enrollments_due_idx ON sequence_enrollments (status, next_due_at);
CREATE INDEX sequence_enrollments_phone_idx ON sequence_enrollments (tenant_id, phone);
-- The sequence engine looks for leads changed since its last look.
CREATE INDEX leads_tenant_updated_idx ON leads (tenant_id, updated_at);

-- Inbound lead webhooks: one signing secret per tenant, and the signatures seen recently (a
-- second delivery of the same signature inside the replay window is refused).
CREATE TABLE webhook_secrets (
    tenant_id BIGINT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    secret TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE webhook_deliveries (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    signature TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL,
    UNIQUE (tenant_id, signature)
);
CREATE INDEX webhook_deliveries_received_idx ON webhook_deliveries (received_at);

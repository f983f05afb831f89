-- (SQLite twin of the PostgreSQL file.) The broadcast engine: lead lists and leads, the
-- tenant-wide opt-out list, campaigns and the durable outbox (one row per intended message, with its pre-generated WhatsApp id).
-- Per-tenant broadcast settings (default country, opt-out keywords, pacing) as a JSON object;
-- '{}' means "the configured defaults".
ALTER TABLE tenants ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
-- When the device was first linked; warm-up (a daily cap ramping up over days) counts from it.
ALTER TABLE devices ADD COLUMN paired_at TIMESTAMP;

CREATE TABLE lead_lists (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE leads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    list_id BIGINT NOT NULL REFERENCES lead_lists (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    -- E.164 digits without the plus, e.g. 60123456789 (the user part of a WhatsApp JID).
    phone TEXT NOT NULL,
    niche TEXT,
    -- Lower-case tags wrapped in commas (",vip,kl,") so one LIKE finds a tag on both backends.
    tags TEXT NOT NULL,
    status TEXT NOT NULL,
    -- Custom CSV columns as a JSON object of strings.
    fields TEXT NOT NULL,
    -- The lead's own device (sequences prefer it); NULL until one is chosen.
    device_id BIGINT REFERENCES devices (id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (list_id, phone)
);
CREATE INDEX leads_tenant_phone_idx ON leads (tenant_id, phone);
CREATE INDEX leads_tenant_status_idx ON leads (tenant_id, status);

CREATE TABLE opt_outs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    phone TEXT NOT NULL,
    -- "keyword" (the lead answered STOP or similar), "manual", "import".
    source TEXT NOT NULL,
    reason TEXT,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (tenant_id, phone)
);

CREATE TABLE campaigns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('draft', 'scheduled', 'running', 'paused', 'completed', 'cancelled')),
    -- Text with {name}-style variables and {a|b} spintax.
    message TEXT NOT NULL,
    -- The prepared picture (always JPEG), content-addressed in the media store.
    image_sha256 TEXT,
    -- JSON: which leads ({list_ids, tags, statuses}), which devices ({mode, ids, user_id}),
    -- and the pacing ({min_delay_ms, max_delay_ms, per_minute, per_day}).
    target TEXT NOT NULL,
    devices TEXT NOT NULL,
    pacing TEXT NOT NULL,
    -- "move" a lost device's rows to the others, or "wait" for it.
    on_device_loss TEXT NOT NULL,
    scheduled_at TIMESTAMP,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    created_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX campaigns_tenant_idx ON campaigns (tenant_id, created_at);
CREATE INDEX campaigns_status_idx ON campaigns (status);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    lead_id BIGINT REFERENCES leads (id) ON DELETE SET NULL,
    device_id BIGINT REFERENCES devices (id) ON DELETE SET NULL,
    phone TEXT NOT NULL,
    -- The text as rendered for this lead (variables and spintax resolved once, so a resend is
    -- the same message).
    body TEXT NOT NULL,
    -- Generated before the first attempt; every retry reuses it, so WhatsApp deduplicates.
    message_id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'delivered', 'read', 'failed', 'skipped')),
    attempts BIGINT NOT NULL,
    -- A row in 'sending' whose lease has passed belongs to a crashed sender: it is sent again.
    lease_until TIMESTAMP,
    error TEXT,
    sent_at TIMESTAMP,
    delivered_at TIMESTAMP,
    read_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (campaign_id, lead_id)
);
CREATE INDEX outbox_claim_idx ON outbox (campaign_id, device_id, status, id);
CREATE INDEX outbox_device_sent_idx ON outbox (device_id, sent_at);
CREATE INDEX outbox_tenant_phone_idx ON outbox (tenant_id, phone);

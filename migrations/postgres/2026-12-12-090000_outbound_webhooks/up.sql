-- Outbound webhooks: endpoints a tenant registers, and one queue row per delivery of an event
-- to an endpoint (leased like the outbox, retried with backoff, kept as the delivery log).
CREATE TABLE webhook_endpoints (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    description TEXT NOT NULL,
    -- The HMAC-SHA256 key deliveries are signed with (64 hex characters, used as text).
    secret TEXT NOT NULL,
    -- Event types delivered, comma-separated; empty = every type.
    events TEXT NOT NULL,
    -- Devices whose events are delivered, comma-separated ids; empty = every device.
    device_ids TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    max_concurrency BIGINT NOT NULL,
    rate_per_second BIGINT NOT NULL,
    -- Since when every delivery attempt failed (NULL while the receiver answers).
    failing_since TIMESTAMP,
    -- Why the daemon switched the endpoint off (410 Gone, failing too long); NULL otherwise.
    disabled_reason TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX webhook_endpoints_tenant_idx ON webhook_endpoints (tenant_id, id);

CREATE TABLE webhook_queue (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    endpoint_id BIGINT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    -- The event's id: the same for every endpoint and every retry (receivers dedupe by it).
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    -- The JSON body sent, as signed.
    payload TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivering', 'delivered', 'dead')),
    attempts BIGINT NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    lease_until TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP,
    -- The last attempt: HTTP status, start of the answer's body, time taken, what went wrong.
    response_status BIGINT,
    response_body TEXT,
    latency_ms BIGINT,
    error TEXT
);
CREATE INDEX webhook_queue_due_idx ON webhook_queue (endpoint_id, status, next_attempt_at);
CREATE INDEX webhook_queue_tenant_idx ON webhook_queue (tenant_id, id);

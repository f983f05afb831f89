-- Device health: a quarantine (no campaign or sequence sends until a time, and why), and the
-- device's history (status changes, quarantines, rate-limit answers) that the device page shows
-- and the health score counts.
ALTER TABLE devices ADD COLUMN quarantined_until TIMESTAMP;
ALTER TABLE devices ADD COLUMN quarantine_reason TEXT;

CREATE TABLE device_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    -- status (detail: the new status), quarantined, quarantine_lifted, rate_limited.
    kind TEXT NOT NULL,
    detail TEXT,
    at TIMESTAMP NOT NULL
);
CREATE INDEX device_events_device_idx ON device_events (device_id, at);
CREATE INDEX device_events_at_idx ON device_events (at);
CREATE INDEX device_events_tenant_idx ON device_events (tenant_id);

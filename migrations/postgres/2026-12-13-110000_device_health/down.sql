DROP TABLE device_events;
ALTER TABLE devices DROP COLUMN quarantine_reason;
ALTER TABLE devices DROP COLUMN quarantined_until;

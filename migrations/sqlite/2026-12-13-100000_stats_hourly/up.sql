-- What the fleet did, per device and UTC hour, kept as it happens so the home page's
-- figures cost a few hundred rows whatever the size of `messages`. Device 0 holds the
-- tenant's total for the hour (owners read it; members sum their devices' rows).
CREATE TABLE stats_hourly (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    device_id BIGINT NOT NULL,
    hour TIMESTAMP NOT NULL,
    -- Messages the device sent (chat mirror), by the hour they were sent.
    sent BIGINT NOT NULL DEFAULT 0,
    -- Of those, how many reached the phone (delivered or read), and how many were read.
    delivered BIGINT NOT NULL DEFAULT 0,
    read BIGINT NOT NULL DEFAULT 0,
    -- Messages contacts wrote in one-to-one chats.
    replies BIGINT NOT NULL DEFAULT 0,
    -- Sends given up (outbox) or refused by WhatsApp.
    failed BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, device_id, hour)
);
-- Ranges of hours across devices (per-device shares, retention).
CREATE INDEX stats_hourly_hour_idx ON stats_hourly (hour, tenant_id);

-- What the mirror already holds.
INSERT INTO stats_hourly (tenant_id, device_id, hour, sent, delivered, read, replies, failed)
SELECT m.tenant_id, m.device_id, strftime('%Y-%m-%d %H:00:00', m.sent_at),
       SUM(CASE WHEN m.from_me THEN 1 ELSE 0 END),
       SUM(CASE WHEN m.from_me AND m.status IN ('delivered', 'read') THEN 1 ELSE 0 END),
       SUM(CASE WHEN m.from_me AND m.status = 'read' THEN 1 ELSE 0 END),
       SUM(CASE WHEN NOT m.from_me AND c.jid NOT LIKE '%@g.us' THEN 1 ELSE 0 END),
       SUM(CASE WHEN m.from_me AND m.status = 'failed' THEN 1 ELSE 0 END)
FROM messages m JOIN chats c ON c.id = m.chat_id
GROUP BY m.tenant_id, m.device_id, strftime('%Y-%m-%d %H:00:00', m.sent_at);

INSERT INTO stats_hourly (tenant_id, device_id, hour, sent, delivered, read, replies, failed)
SELECT tenant_id, 0, hour, SUM(sent), SUM(delivered), SUM(read), SUM(replies), SUM(failed)
FROM stats_hourly GROUP BY tenant_id, hour;
-- The device rows summed per UTC day: a range of many days reads one row per device and day
-- (the per-device shares), its edges the hourly rows.
CREATE TABLE stats_daily (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    device_id BIGINT NOT NULL,
    day TIMESTAMP NOT NULL,
    sent BIGINT NOT NULL DEFAULT 0,
    delivered BIGINT NOT NULL DEFAULT 0,
    read BIGINT NOT NULL DEFAULT 0,
    replies BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, device_id, day)
);
CREATE INDEX stats_daily_day_idx ON stats_daily (day, tenant_id);
INSERT INTO stats_daily (tenant_id, device_id, day, sent, delivered, read, replies, failed)
SELECT tenant_id, device_id, strftime('%Y-%m-%d 00:00:00', hour), SUM(sent), SUM(delivered), SUM(read), SUM(replies), SUM(failed)
FROM stats_hourly WHERE device_id <> 0 GROUP BY tenant_id, device_id, strftime('%Y-%m-%d 00:00:00', hour);

CREATE INDEX opt_outs_created_idx ON opt_outs (tenant_id, created_at);

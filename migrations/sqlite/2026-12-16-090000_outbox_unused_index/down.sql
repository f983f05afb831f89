CREATE INDEX outbox_tenant_phone_idx ON outbox (tenant_id, phone);

-- outbox (tenant_id, phone) answered no query: nothing looks outbox rows up by phone (opt-outs,
-- replies and exports go by lead, campaign or device). It cost a write on every new row (a
-- million at a big campaign's start) and, on PostgreSQL, on every status change.
DROP INDEX outbox_tenant_phone_idx;

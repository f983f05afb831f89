-- outbox (tenant_id, phone) answered no query: nothing looks outbox rows up by phone (opt-outs,
-- replies and exports go by lead, campaign or device). It cost a write on every new row (a
-- million at a big campaign's start) and, on PostgreSQL, on every status change. outbox.tenant_id
-- (ON DELETE CASCADE from tenants) is then unindexed on purpose, like chats.tenant_id and
-- messages.tenant_id: a tenant is deleted rarely and once (one scan).
DROP INDEX outbox_tenant_phone_idx;

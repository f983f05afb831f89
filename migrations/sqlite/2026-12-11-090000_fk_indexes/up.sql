-- Indexes on foreign-key columns that had none. Deleting a parent row makes the database find
-- its children through them (ON DELETE SET NULL / CASCADE): without an index every deleted lead
-- scanned the whole outbox and every enrolment, so deleting a big list took O(leads × rows)
-- while holding SQLite's write lock (20,000 leads with 20,000 outbox rows: 28 s). Tenant-wide
-- columns of the chat mirror (chats.tenant_id, messages.tenant_id) stay unindexed on purpose:
-- a tenant is deleted rarely and once (one scan), and messages is the table written most.
CREATE INDEX outbox_lead_idx ON outbox (lead_id);
CREATE INDEX sequence_enrollments_lead_idx ON sequence_enrollments (lead_id);
CREATE INDEX sequence_enrollments_device_idx ON sequence_enrollments (device_id);
CREATE INDEX leads_device_idx ON leads (device_id);
CREATE INDEX sequences_campaign_idx ON sequences (campaign_id);
CREATE INDEX sequences_next_sequence_idx ON sequences (next_sequence_id);
CREATE INDEX sequences_created_by_idx ON sequences (created_by);
CREATE INDEX campaigns_created_by_idx ON campaigns (created_by);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_user_id);

DROP TABLE outbox;
DROP TABLE campaigns;
DROP TABLE opt_outs;
DROP TABLE leads;
DROP TABLE lead_lists;
ALTER TABLE devices DROP COLUMN paired_at;
ALTER TABLE tenants DROP COLUMN settings;

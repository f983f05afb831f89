-- Imports look up a batch of phones in one list (phone = ANY(...) AND list_id = ?): with the
-- phone leading, each phone is one index probe. The (list_id, phone) unique index alone made
-- PostgreSQL 15 scan the whole list for every batch.
CREATE INDEX leads_phone_list_idx ON leads (phone, list_id);

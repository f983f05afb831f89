DROP INDEX leads_list_order_idx;
DROP TRIGGER leads_search_update;
DROP TRIGGER leads_search_delete;
DROP TRIGGER leads_search_insert;
DROP TABLE leads_search;
DROP TRIGGER leads_count_move;
DROP TRIGGER leads_count_delete;
DROP TRIGGER leads_count_insert;
ALTER TABLE lead_lists DROP COLUMN lead_count;

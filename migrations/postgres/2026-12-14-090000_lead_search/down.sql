DROP INDEX leads_list_order_idx;
DROP INDEX leads_search_trgm_idx;
DROP TRIGGER leads_count_move ON leads;
DROP TRIGGER leads_count_delete ON leads;
DROP TRIGGER leads_count_insert ON leads;
DROP FUNCTION leads_count_moved();
DROP FUNCTION leads_count_removed();
DROP FUNCTION leads_count_added();
ALTER TABLE lead_lists DROP COLUMN lead_count;

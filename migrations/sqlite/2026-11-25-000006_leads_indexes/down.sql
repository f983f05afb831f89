DROP INDEX leads_phone_list_idx;

-- SQLite's lead search index gets leaner FTS5 options in this version. PostgreSQL's trigram
-- index (leads_search_trgm_idx) has no such options; this step keeps both backends' lists of
-- migrations the same.
SELECT 1;

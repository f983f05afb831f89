-- The lead search index, leaner to write (a 1M-row import spent about a third of its writing
-- thread in FTS5). Nothing reads FTS5's per-row column sizes (they serve bm25 ranking; search
-- orders by lead id), so `columnsize = 0` drops that table and its write per lead. `automerge`
-- 8 instead of 4 merges the small segment each commit leaves when 8 of a level exist, not 4:
-- fewer rewrites of the same postings, and searches still read a handful of segments. The
-- triggers on `leads` name the table and keep writing to the new one.
DROP TABLE leads_search;
CREATE VIRTUAL TABLE leads_search USING fts5(
    name, phone, content = 'leads', content_rowid = 'id', tokenize = 'trigram case_sensitive 0',
    columnsize = 0
);
INSERT INTO leads_search (leads_search, rank) VALUES ('automerge', 8);
INSERT INTO leads_search (leads_search) VALUES ('rebuild');

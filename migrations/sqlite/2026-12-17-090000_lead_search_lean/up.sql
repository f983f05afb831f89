-- The lead search index, leaner to write (a 1M-row import spent about a third of its writing
-- thread in FTS5). Nothing reads FTS5's per-row column sizes (they serve bm25 ranking; search
-- orders by lead id), so `columnsize = 0` drops that table and its write per lead. `automerge`
-- 8 instead of 4 merges the small segment each commit leaves when 8 of a level exist, not 4:
-- fewer rewrites of the same postings, and searches still read a handful of segments.
DROP TRIGGER leads_search_insert;
DROP TRIGGER leads_search_delete;
DROP TRIGGER leads_search_update;
DROP TABLE leads_search;

CREATE VIRTUAL TABLE leads_search USING fts5(
    name, phone, content = 'leads', content_rowid = 'id', tokenize = 'trigram case_sensitive 0',
    columnsize = 0
);
INSERT INTO leads_search (leads_search, rank) VALUES ('automerge', 8);
INSERT INTO leads_search (leads_search) VALUES ('rebuild');

CREATE TRIGGER leads_search_insert AFTER INSERT ON leads BEGIN
    INSERT INTO leads_search (rowid, name, phone) VALUES (NEW.id, NEW.name, NEW.phone);
END;
CREATE TRIGGER leads_search_delete AFTER DELETE ON leads BEGIN
    INSERT INTO leads_search (leads_search, rowid, name, phone)
    VALUES ('delete', OLD.id, OLD.name, OLD.phone);
END;
CREATE TRIGGER leads_search_update AFTER UPDATE OF name, phone ON leads BEGIN
    INSERT INTO leads_search (leads_search, rowid, name, phone)
    VALUES ('delete', OLD.id, OLD.name, OLD.phone);
    INSERT INTO leads_search (rowid, name, phone) VALUES (NEW.id, NEW.name, NEW.phone);
END;

-- Lead pages at a million leads. A list's lead count is kept on the list by triggers (the lists
-- page grouped every lead of the tenant on each load), and lead search goes through an FTS5
-- trigram index of name and phone (a substring search scanned every lead when few matched).
ALTER TABLE lead_lists ADD COLUMN lead_count BIGINT NOT NULL DEFAULT 0;
UPDATE lead_lists SET lead_count = (SELECT COUNT(*) FROM leads WHERE leads.list_id = lead_lists.id);

CREATE TRIGGER leads_count_insert AFTER INSERT ON leads BEGIN
    UPDATE lead_lists SET lead_count = lead_count + 1 WHERE id = NEW.list_id;
END;
CREATE TRIGGER leads_count_delete AFTER DELETE ON leads BEGIN
    UPDATE lead_lists SET lead_count = lead_count - 1 WHERE id = OLD.list_id;
END;
CREATE TRIGGER leads_count_move AFTER UPDATE OF list_id ON leads
WHEN OLD.list_id <> NEW.list_id BEGIN
    UPDATE lead_lists SET lead_count = lead_count - 1 WHERE id = OLD.list_id;
    UPDATE lead_lists SET lead_count = lead_count + 1 WHERE id = NEW.list_id;
END;

-- Case-insensitive substrings of three characters or more; the rows stay in `leads`.
CREATE VIRTUAL TABLE leads_search USING fts5(
    name, phone, content = 'leads', content_rowid = 'id', tokenize = 'trigram case_sensitive 0'
);
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

-- A page of a list is its leads in id order: read in order from this index, not by walking
-- every lead of the tenant (the small lists' leads came last) or sorting a big list.
CREATE INDEX leads_list_order_idx ON leads (list_id, id);

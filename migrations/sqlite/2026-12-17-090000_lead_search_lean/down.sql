DROP TRIGGER leads_search_insert;
DROP TRIGGER leads_search_delete;
DROP TRIGGER leads_search_update;
DROP TABLE leads_search;

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

DROP TABLE leads_search;
CREATE VIRTUAL TABLE leads_search USING fts5(
    name, phone, content = 'leads', content_rowid = 'id', tokenize = 'trigram case_sensitive 0'
);
INSERT INTO leads_search (leads_search) VALUES ('rebuild');

-- Lead pages at a million leads. A list's lead count is kept on the list by statement triggers
-- (the lists page grouped every lead of the tenant on each load; one update per statement, not
-- per row, so an import batch touches its list once), and lead search uses a trigram index of
-- the lower-cased name and phone (a substring search scanned every lead when few matched).
-- pg_trgm ships with PostgreSQL and is a trusted extension: a database owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

ALTER TABLE lead_lists ADD COLUMN lead_count BIGINT NOT NULL DEFAULT 0;
UPDATE lead_lists SET lead_count = counted.n
FROM (SELECT list_id, COUNT(*) AS n FROM leads GROUP BY list_id) AS counted
WHERE counted.list_id = lead_lists.id;

CREATE FUNCTION leads_count_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE lead_lists SET lead_count = lead_count + added.n
    FROM (SELECT list_id, COUNT(*) AS n FROM new_leads GROUP BY list_id ORDER BY list_id) AS added
    WHERE lead_lists.id = added.list_id;
    RETURN NULL;
END $$;
CREATE FUNCTION leads_count_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE lead_lists SET lead_count = lead_count - removed.n
    FROM (SELECT list_id, COUNT(*) AS n FROM old_leads GROUP BY list_id ORDER BY list_id) AS removed
    WHERE lead_lists.id = removed.list_id;
    RETURN NULL;
END $$;
-- A lead moving to another list (rare: per row, and only when the list changed).
CREATE FUNCTION leads_count_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE lead_lists SET lead_count = lead_count - 1 WHERE id = OLD.list_id;
    UPDATE lead_lists SET lead_count = lead_count + 1 WHERE id = NEW.list_id;
    RETURN NULL;
END $$;
CREATE TRIGGER leads_count_insert AFTER INSERT ON leads
    REFERENCING NEW TABLE AS new_leads FOR EACH STATEMENT EXECUTE FUNCTION leads_count_added();
CREATE TRIGGER leads_count_delete AFTER DELETE ON leads
    REFERENCING OLD TABLE AS old_leads FOR EACH STATEMENT EXECUTE FUNCTION leads_count_removed();
CREATE TRIGGER leads_count_move AFTER UPDATE OF list_id ON leads
    FOR EACH ROW WHEN (OLD.list_id IS DISTINCT FROM NEW.list_id)
    EXECUTE FUNCTION leads_count_moved();

-- One trigram index of name and phone joined by a character no search term holds (U+0001), so
-- `LIKE '%term%'` on the joined text finds exactly what the name or the phone contains. An
-- index on the bare phone column would also answer `phone = ANY(...)`, and the planner took it
-- over (list_id, phone) for the importer's lookups, which then crawled.
CREATE INDEX leads_search_trgm_idx ON leads
    USING gin ((lower(name) || E'\x01' || phone) gin_trgm_ops);

-- A page of a list is its leads in id order: read in order from this index, not by walking
-- every lead of the tenant (the small lists' leads came last) or sorting a big list.
CREATE INDEX leads_list_order_idx ON leads (list_id, id);

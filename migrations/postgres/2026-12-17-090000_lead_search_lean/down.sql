-- Undoes nothing on PostgreSQL (see up.sql).
SELECT 1;

-- Scale-out (nodes, device leases, the leader lease) is PostgreSQL's alone: an SQLite file has
-- one daemon (src/db/single_node.rs), which runs every device. This migration keeps the two
-- backends' histories in step.
SELECT 1;

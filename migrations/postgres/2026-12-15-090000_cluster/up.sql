-- Scale-out: several daemons share one fleet (docs/scaling.md). Each daemon is a node with a
-- heartbeat; each running device has a lease naming the node that runs it, renewed in one
-- statement per heartbeat. The epoch is a fencing token: it changes whenever the lease changes
-- hands, and outbox claims and finishes check it, so a node that lost a lease cannot send.
-- Times are the database's own (now()): a node's clock never decides who owns what.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    -- A random id per process: a restarted node replaces the row, and the old process, if it
    -- still runs, sees that it was replaced.
    incarnation TEXT NOT NULL,
    -- Where other nodes forward device commands (http://host:port).
    address TEXT NOT NULL,
    version TEXT NOT NULL,
    -- The most devices this node runs.
    capacity INTEGER NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL,
    -- Set by POST /api/v1/admin/nodes/{id}/drain: the node hands every device to the others.
    draining BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE SEQUENCE device_lease_epochs;

CREATE TABLE device_leases (
    device_id BIGINT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    -- No foreign key: a lease outlives a forgotten node row until it expires.
    node_id TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX device_leases_node_idx ON device_leases (node_id);

-- Work that runs once in the cluster (scheduled starts, completions, moves of a lost device's
-- rows, sequence steps) runs on the node holding this lease.
CREATE TABLE cluster_leader (
    name TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
INSERT INTO cluster_leader (name, node_id, expires_at) VALUES ('engine', '', '-infinity');

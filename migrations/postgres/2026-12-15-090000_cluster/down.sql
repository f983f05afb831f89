DROP TABLE cluster_leader;
DROP TABLE device_leases;
DROP SEQUENCE device_lease_epochs;
DROP TABLE nodes;

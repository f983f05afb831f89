DROP TABLE audit_log;
DROP TABLE devices;
DROP TABLE users;
DROP TABLE tenants;

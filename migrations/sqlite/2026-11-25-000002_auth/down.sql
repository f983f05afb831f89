DROP TABLE device_assignments;
DROP TABLE api_tokens;
DROP TABLE sessions;

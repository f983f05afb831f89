DROP TABLE outbox_tallies;
DROP INDEX audit_log_created_idx;
DROP INDEX messages_sent_idx;

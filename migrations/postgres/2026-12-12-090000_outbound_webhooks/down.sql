DROP TABLE webhook_queue;
DROP TABLE webhook_endpoints;

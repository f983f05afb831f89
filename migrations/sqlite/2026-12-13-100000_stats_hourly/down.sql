DROP INDEX opt_outs_created_idx;
DROP TABLE stats_daily;
DROP TABLE stats_hourly;

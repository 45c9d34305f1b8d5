-- Background jobs that must run once per interval across instances (issue 6). The PostgreSQL
-- twin of migrations/sqlite/0005.
CREATE TABLE job_runs (
    job         TEXT   NOT NULL PRIMARY KEY,
    last_run_ms BIGINT NOT NULL
);

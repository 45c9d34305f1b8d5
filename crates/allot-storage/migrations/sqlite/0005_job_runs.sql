-- Background jobs that must run once per interval across instances (issue 6): an instance
-- runs a job only if its claim moves last_run_ms forward.
CREATE TABLE job_runs (
    job         TEXT    NOT NULL PRIMARY KEY,
    last_run_ms INTEGER NOT NULL
);

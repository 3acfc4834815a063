-- Bearer tokens of `mediaflow serve` (`mediaflow token create`). Only a hash of each
-- token's secret is kept; the token's id is the public half a request is looked up by.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    scope TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX runs_by_created ON runs (created_at, id);

-- One row per schedule tick a service handled: its primary key is what makes two
-- services on one database fire each tick once (the second INSERT finds the row).
CREATE TABLE schedule_ticks (
    workflow TEXT NOT NULL,
    schedule INTEGER NOT NULL,
    tick INTEGER NOT NULL,
    status TEXT NOT NULL,
    run_id TEXT,
    fired_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (workflow, schedule, tick)
);
CREATE INDEX schedule_ticks_by_status ON schedule_ticks (status, workflow, schedule, tick);

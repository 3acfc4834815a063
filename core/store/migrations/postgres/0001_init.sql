CREATE TABLE workflows (
    hash TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    source_path TEXT,
    yaml TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE runs (
    id TEXT PRIMARY KEY NOT NULL,
    workflow_hash TEXT NOT NULL REFERENCES workflows(hash),
    workflow_name TEXT NOT NULL,
    status TEXT NOT NULL,
    inputs TEXT NOT NULL,
    options TEXT NOT NULL,
    outputs TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT,
    resumed_count BIGINT NOT NULL DEFAULT 0,
    owner TEXT,
    heartbeat_at BIGINT
);
CREATE INDEX runs_by_workflow ON runs (workflow_name, created_at);
CREATE INDEX runs_by_status ON runs (status, created_at);

CREATE TABLE step_runs (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step_id TEXT NOT NULL,
    item_index BIGINT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    cache_key TEXT,
    outputs TEXT,
    error TEXT,
    started_at BIGINT,
    finished_at BIGINT,
    duration_ms BIGINT,
    worker TEXT,
    PRIMARY KEY (run_id, step_id, item_index)
);

CREATE TABLE step_logs (
    id BIGSERIAL PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step_id TEXT NOT NULL,
    item_index BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX step_logs_by_run ON step_logs (run_id, id);

CREATE TABLE step_cache (
    cache_key TEXT PRIMARY KEY NOT NULL,
    plugin TEXT NOT NULL,
    outputs TEXT NOT NULL,
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE artifacts (
    sha256 TEXT PRIMARY KEY NOT NULL,
    media_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    path TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE workflows (
    hash TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    source_path TEXT,
    yaml TEXT NOT NULL,
    created_at INTEGER NOT NULL
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
    created_at INTEGER NOT NULL,
    finished_at INTEGER,
    resumed_count INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    heartbeat_at INTEGER
);
CREATE INDEX runs_by_workflow ON runs (workflow_name, created_at);
CREATE INDEX runs_by_status ON runs (status, created_at);

CREATE TABLE step_runs (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step_id TEXT NOT NULL,
    item_index INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    cache_key TEXT,
    outputs TEXT,
    error TEXT,
    started_at INTEGER,
    finished_at INTEGER,
    duration_ms INTEGER,
    worker TEXT,
    PRIMARY KEY (run_id, step_id, item_index)
);

CREATE TABLE step_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step_id TEXT NOT NULL,
    item_index INTEGER NOT NULL,
    ts INTEGER NOT NULL,
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
    created_at INTEGER NOT NULL
);

CREATE TABLE artifacts (
    sha256 TEXT PRIMARY KEY NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    path TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

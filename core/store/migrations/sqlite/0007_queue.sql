-- The work queue of distributed runs: each ready step (each `for_each` item) a coordinator
-- hands to `mediaflow worker` processes, and the workers that are alive.
--
-- A claim takes a ready task, sets its lease and bumps its `generation`, the fencing
-- token: a result is only accepted with the generation of the claim that produced it, so a
-- worker that was paused past its lease cannot overwrite the newer attempt's result.
CREATE TABLE task_queue (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    -- -1 for a step without `for_each`.
    item_index BIGINT NOT NULL,
    plugin TEXT NOT NULL,
    -- JSON array: what a worker must have besides the plugin (models, tags).
    needs TEXT NOT NULL,
    -- JSON: what the worker needs to run it (the resolved settings, the context).
    payload TEXT NOT NULL,
    -- ready | running | succeeded | failed | cancelled
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    max_attempts BIGINT NOT NULL,
    generation BIGINT NOT NULL,
    worker TEXT,
    lease_until BIGINT,
    -- JSON: the outputs, or the error.
    result TEXT,
    enqueued_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    UNIQUE (run_id, step_id, item_index)
);
CREATE INDEX task_queue_ready ON task_queue (state, enqueued_at);
CREATE INDEX task_queue_run ON task_queue (run_id);

-- Live workers: what each can run, and when it last said so.
CREATE TABLE queue_workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    -- JSON arrays.
    plugins TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    concurrency BIGINT NOT NULL,
    running BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

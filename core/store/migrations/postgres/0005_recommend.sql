-- Reading events and the catalogue the recommender learns from (`mediaflow events import`,
-- `events.record`, `events.import`), and the recommendations it writes (`recommend.rank`
-- with `save: true`). An event is identified by who, what, how and when: importing the same
-- file twice adds nothing.
CREATE TABLE interactions (
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts BIGINT NOT NULL,
    weight DOUBLE PRECISION NOT NULL,
    source TEXT,
    PRIMARY KEY (user_id, item_id, kind, ts)
);
CREATE INDEX interactions_ts ON interactions (ts);

-- Items: articles, episodes, films. `tags` is a JSON array of strings.
CREATE TABLE items (
    id TEXT PRIMARY KEY,
    title TEXT,
    body TEXT,
    published_at BIGINT,
    section TEXT,
    tags TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Each user's top k from one ranking step, with the reason shown to the reader.
CREATE TABLE recommendations (
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    model_version TEXT NOT NULL,
    user_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    item_id TEXT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    reason TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, step_id, user_id, position)
);
CREATE INDEX recommendations_user ON recommendations (user_id, created_at);

-- Embedding collections (`text.embed` with `store:`, searched by `text.search`). A
-- collection holds one embedding model's vectors; `revision` changes on every write, so a
-- process holding an in-memory index knows when to reload it.
CREATE TABLE embedding_collections (
    collection TEXT PRIMARY KEY,
    model_sha256 TEXT NOT NULL,
    model_name TEXT NOT NULL,
    dims BIGINT NOT NULL,
    revision BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One vector per (collection, id): little-endian f32, L2-normalised.
CREATE TABLE embeddings (
    collection TEXT NOT NULL REFERENCES embedding_collections (collection),
    id TEXT NOT NULL,
    vector BYTEA NOT NULL,
    text TEXT,
    metadata TEXT NOT NULL,
    run_id TEXT,
    step_id TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (collection, id)
);

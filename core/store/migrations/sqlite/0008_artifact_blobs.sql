-- Artifact bytes in the database, for distributed runs: a worker on another machine has
-- no access to the coordinator's data dir, so every artifact a queued step reads or
-- writes is published here in chunks and fetched into the reader's own artifact store
-- (which caches it by sha256). The `artifact_blobs` row is written after its last chunk:
-- a blob without one is incomplete and is written again.
CREATE TABLE artifact_chunks (
    sha256 TEXT NOT NULL,
    idx BIGINT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (sha256, idx)
);

CREATE TABLE artifact_blobs (
    sha256 TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    chunks BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Which `mediaflow worker` ran a step's last attempt in a distributed run (`worker` stays
-- the run's owner, the coordinator, which fences the record's writes).
ALTER TABLE step_runs ADD COLUMN ran_on TEXT;

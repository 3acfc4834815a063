-- The entries `feed.read` with `dedupe: true` has returned, by feed, so a scheduled run only
-- sees new ones. `feed` is the step's `dedupe_key` or the feed's URL or path.
CREATE TABLE feed_seen (
    feed TEXT NOT NULL,
    guid TEXT NOT NULL,
    seen_at BIGINT NOT NULL,
    PRIMARY KEY (feed, guid)
);
CREATE INDEX feed_seen_at ON feed_seen (seen_at);

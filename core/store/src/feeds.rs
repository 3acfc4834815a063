//! The feed entries `feed.read` has already returned (`dedupe: true`), by feed, so that a
//! scheduled run sees only what is new.
//!
//! `seen_at` is when an entry was last in its feed: entries still in the feed are refreshed
//! on every read, and entries gone from it for a while can be forgotten without coming back.

use std::collections::HashSet;
use std::time::Duration;

use sqlx::Row;

use crate::sql::{numbered, Store};
use crate::{now_ms, Result};

/// Ids per `IN (…)` list or multi-row insert: far below both backends' bind limits.
const PER_STATEMENT: usize = 400;

/// What [`Store::claim_feed_entries`] decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FeedClaim {
    /// The entries this read returns: new, and now remembered.
    pub claimed: HashSet<String>,
    /// Entries left out because a read (this one's rival included) returned them before.
    pub seen: usize,
    /// Remembered entries forgotten because they left the feed long ago.
    pub forgotten: u64,
}

impl Store {
    /// Which of `guids` were remembered for `feed` before.
    pub async fn feed_seen(&self, feed: &str, guids: &[String]) -> Result<HashSet<String>> {
        let mut seen = HashSet::new();
        for part in guids.chunks(PER_STATEMENT) {
            let sql = format!(
                "SELECT guid FROM feed_seen WHERE feed = $1 AND guid IN ({})",
                numbered(2, part.len())
            );
            let rows = self
                .retry(|| {
                    // Built from placeholder numbers only: nothing of the data.
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(feed);
                    for g in part {
                        q = q.bind(g);
                    }
                    q.fetch_all(&self.pool)
                })
                .await?;
            for r in &rows {
                seen.insert(r.try_get(0)?);
            }
        }
        Ok(seen)
    }

    /// One read of `feed`, whose entries are `guids` in the feed's order: claims up to
    /// `limit` entries not remembered before (each insert reports which rows it added, so
    /// of two reads at once each entry goes to one), refreshes the time of the ones
    /// remembered, and forgets entries not in the feed for `forget_after`.
    pub async fn claim_feed_entries(
        &self,
        feed: &str,
        guids: &[String],
        limit: usize,
        forget_after: Duration,
    ) -> Result<FeedClaim> {
        let now = now_ms();
        let known = self.feed_seen(feed, guids).await?;
        let mut claim = FeedClaim::default();
        for part in known.iter().collect::<Vec<_>>().chunks(PER_STATEMENT) {
            let sql = format!(
                "UPDATE feed_seen SET seen_at = $2 WHERE feed = $1 AND guid IN ({})",
                numbered(3, part.len())
            );
            self.retry(|| {
                // Built from placeholder numbers only: nothing of the data.
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(feed)
                    .bind(now);
                for g in part {
                    q = q.bind(*g);
                }
                q.execute(&self.pool)
            })
            .await?;
        }
        claim.seen = known.len();
        let fresh: Vec<&String> = {
            let mut once = HashSet::new();
            guids
                .iter()
                .filter(|g| !known.contains(*g) && once.insert(*g))
                .collect()
        };
        let mut next = 0;
        while claim.claimed.len() < limit && next < fresh.len() {
            let take = (limit - claim.claimed.len())
                .min(PER_STATEMENT)
                .min(fresh.len() - next);
            let part = &fresh[next..next + take];
            next += take;
            let values = (0..part.len())
                .map(|i| format!("($1, $2, ${})", i + 3))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO feed_seen (feed, seen_at, guid) VALUES {values} \
                 ON CONFLICT (feed, guid) DO NOTHING RETURNING guid"
            );
            let rows = self
                .retry(|| {
                    // Built from placeholder numbers only: nothing of the data.
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                        .bind(feed)
                        .bind(now);
                    for g in part {
                        q = q.bind(*g);
                    }
                    q.fetch_all(&self.pool)
                })
                .await?;
            // An entry not inserted was claimed by a read running beside this one.
            claim.seen += part.len() - rows.len();
            for r in &rows {
                claim.claimed.insert(r.try_get(0)?);
            }
        }
        let before =
            now.saturating_sub(i64::try_from(forget_after.as_millis()).unwrap_or(i64::MAX));
        let done = self
            .retry(|| {
                sqlx::query("DELETE FROM feed_seen WHERE feed = $1 AND seen_at < $2")
                    .bind(feed)
                    .bind(before)
                    .execute(&self.pool)
            })
            .await?;
        claim.forgotten = done.rows_affected();
        Ok(claim)
    }

    /// Forgets entries of every feed last seen before `before` (Unix ms); returns how many.
    pub async fn forget_feed_entries(&self, before: i64) -> Result<u64> {
        let done = self
            .retry(|| {
                sqlx::query("DELETE FROM feed_seen WHERE seen_at < $1")
                    .bind(before)
                    .execute(&self.pool)
            })
            .await?;
        Ok(done.rows_affected())
    }
}

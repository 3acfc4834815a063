//! The feed entries `feed.read` has already returned (`dedupe: true`), by feed, so that a
//! scheduled run sees only what is new.

use std::collections::HashSet;

use sqlx::Row;

use crate::sql::Store;
use crate::{now_ms, Result};

/// Ids per `IN (…)` list or multi-row insert: far below both backends' bind limits.
const PER_STATEMENT: usize = 400;

/// `$first, $first+1, …` for `n` placeholders.
fn numbered(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
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

    /// Remembers `guids` for `feed` (those already remembered keep their first time).
    pub async fn remember_feed_entries(&self, feed: &str, guids: &[String]) -> Result<()> {
        let now = now_ms();
        for part in guids.chunks(PER_STATEMENT) {
            let values = (0..part.len())
                .map(|i| format!("($1, $2, ${})", i + 3))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO feed_seen (feed, seen_at, guid) VALUES {values} \
                 ON CONFLICT (feed, guid) DO NOTHING"
            );
            self.retry(|| {
                // Built from placeholder numbers only: nothing of the data.
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(feed)
                    .bind(now);
                for g in part {
                    q = q.bind(g);
                }
                q.execute(&self.pool)
            })
            .await?;
        }
        Ok(())
    }

    /// Forgets entries remembered before `before` (Unix ms); returns how many.
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

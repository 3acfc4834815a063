//! Reading events, the item catalogue and stored recommendations: what the recommender
//! (`mediaflow-recommend`) learns from and writes back.
//!
//! Events are keyed by (user, item, kind, time), so importing a file twice, or recording an
//! event twice, stores it once. Writes go in multi-row statements inside one transaction
//! per chunk, each chunk retried as a whole (safe: every statement is an upsert).

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::sql::{numbered, value_rows, Store};
use crate::{now_ms, Result, StoreError};

/// One event: `user` did `kind` to `item` at `ts` (Unix ms), with a weight (a rating, a
/// dwell time in seconds, or 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    pub user: String,
    pub item: String,
    pub kind: String,
    pub ts: i64,
    pub weight: f64,
    /// Where it came from (a file name, a run id), for audits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One item of the catalogue: an article, an episode, a film.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemRecord {
    pub id: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    /// Unix ms.
    #[serde(default)]
    pub published_at: Option<i64>,
    #[serde(default)]
    pub section: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// One stored recommendation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecommendationRow {
    pub user: String,
    /// 1 for the best.
    pub position: i64,
    pub item: String,
    pub score: f64,
    pub reason: String,
}

/// A stored recommendation with where it came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredRecommendation {
    pub run_id: String,
    pub step_id: String,
    pub model_version: String,
    #[serde(flatten)]
    pub row: RecommendationRow,
    pub created_at: i64,
}

/// Rows per multi-row statement: at most 9 columns × 150 = 1,350 binds, within the bundled
/// SQLite's limit (32,766) and PostgreSQL's (65,535).
const ROWS_PER_STATEMENT: usize = 150;
/// Rows per transaction.
const ROWS_PER_TRANSACTION: usize = 6000;

/// `rows` cut into runs of about `target` rows, each ending where the user changes (a
/// user's rows never straddle two chunks; one user with more than `target` rows is one
/// chunk).
fn user_chunks(rows: &[RecommendationRow], target: usize) -> Vec<&[RecommendationRow]> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < rows.len() {
        let mut end = (start + target.max(1)).min(rows.len());
        while end < rows.len() && rows[end].user == rows[end - 1].user {
            end += 1;
        }
        out.push(&rows[start..end]);
        start = end;
    }
    out
}

fn item_from_row(row: &AnyRow) -> Result<ItemRecord> {
    let tags: String = row.try_get(5)?;
    Ok(ItemRecord {
        id: row.try_get(0)?,
        title: row.try_get(1)?,
        body: row.try_get(2)?,
        published_at: row.try_get(3)?,
        section: row.try_get(4)?,
        tags: serde_json::from_str(&tags).map_err(|source| StoreError::Corrupt {
            what: "items.tags".into(),
            source,
        })?,
    })
}

impl Store {
    /// Stores `events`; an event already stored (same user, item, kind and time) is left as
    /// it was. Returns how many were new.
    pub async fn insert_interactions(&self, events: &[Interaction]) -> Result<u64> {
        let mut added = 0;
        for chunk in events.chunks(ROWS_PER_TRANSACTION) {
            added += self
                .retry(|| async move {
                    let mut tx = self.pool.begin().await?;
                    let mut n = 0;
                    for part in chunk.chunks(ROWS_PER_STATEMENT) {
                        let sql = format!(
                            "INSERT INTO interactions (user_id, item_id, kind, ts, weight, source) \
                             VALUES {} ON CONFLICT (user_id, item_id, kind, ts) DO NOTHING",
                            value_rows(part.len(), 6)
                        );
                        // Built from constants and placeholder numbers only: nothing of the data.
                        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                        for e in part {
                            q = q
                                .bind(&e.user)
                                .bind(&e.item)
                                .bind(&e.kind)
                                .bind(e.ts)
                                .bind(e.weight)
                                .bind(&e.source);
                        }
                        n += q.execute(&mut *tx).await?.rows_affected();
                    }
                    tx.commit().await?;
                    Ok(n)
                })
                .await?;
        }
        Ok(added)
    }

    /// Stores `items`, replacing what is stored under their ids. Returns how many were new
    /// or changed.
    pub async fn upsert_items(&self, items: &[ItemRecord]) -> Result<u64> {
        let mut changed = 0;
        for chunk in items.chunks(ROWS_PER_TRANSACTION) {
            changed += self
                .retry(|| async move {
                    let now = now_ms();
                    let mut tx = self.pool.begin().await?;
                    let mut n = 0;
                    for part in chunk.chunks(ROWS_PER_STATEMENT) {
                        // An unchanged row is not rewritten, so the count is what changed.
                        let sql = format!(
                            "INSERT INTO items (id, title, body, published_at, section, tags, \
                             updated_at) VALUES {} ON CONFLICT (id) DO UPDATE SET \
                             title = excluded.title, body = excluded.body, \
                             published_at = excluded.published_at, section = excluded.section, \
                             tags = excluded.tags, updated_at = excluded.updated_at \
                             WHERE items.title IS DISTINCT FROM excluded.title \
                             OR items.body IS DISTINCT FROM excluded.body \
                             OR items.published_at IS DISTINCT FROM excluded.published_at \
                             OR items.section IS DISTINCT FROM excluded.section \
                             OR items.tags <> excluded.tags",
                            value_rows(part.len(), 7)
                        );
                        // Built from constants and placeholder numbers only: nothing of the data.
                        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                        for it in part {
                            let tags = serde_json::to_string(&it.tags).unwrap_or_default();
                            q = q
                                .bind(&it.id)
                                .bind(&it.title)
                                .bind(&it.body)
                                .bind(it.published_at)
                                .bind(&it.section)
                                .bind(tags)
                                .bind(now);
                        }
                        n += q.execute(&mut *tx).await?.rows_affected();
                    }
                    tx.commit().await?;
                    Ok(n)
                })
                .await?;
        }
        Ok(changed)
    }

    /// Every event at or after `since` (Unix ms), oldest first.
    pub async fn interactions(&self, since: Option<i64>) -> Result<Vec<Interaction>> {
        let since = since.unwrap_or(i64::MIN);
        let rows = self
            .retry(|| {
                sqlx::query(
                    "SELECT user_id, item_id, kind, ts, weight, source FROM interactions \
                     WHERE ts >= $1 ORDER BY ts, user_id, item_id, kind",
                )
                .bind(since)
                .fetch_all(&self.pool)
            })
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Interaction {
                    user: r.try_get(0)?,
                    item: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    ts: r.try_get(3)?,
                    weight: r.try_get(4)?,
                    source: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// How many events are stored.
    pub async fn interaction_count(&self) -> Result<i64> {
        let row = self
            .retry(|| sqlx::query("SELECT COUNT(*) FROM interactions").fetch_one(&self.pool))
            .await?;
        Ok(row.try_get(0)?)
    }

    /// The whole catalogue, by id.
    pub async fn items(&self) -> Result<Vec<ItemRecord>> {
        let rows = self
            .retry(|| {
                sqlx::query(
                    "SELECT id, title, body, published_at, section, tags FROM items ORDER BY id",
                )
                .fetch_all(&self.pool)
            })
            .await?;
        rows.iter().map(item_from_row).collect()
    }

    /// Replaces what step `step_id` of `run_id` stored before (a retried attempt) with `rows`.
    ///
    /// `rows` are grouped by user (as `recommend.rank` writes them). They are committed in
    /// transactions of about [`ROWS_PER_TRANSACTION`] rows that end at a user boundary, so a
    /// reader sees each user's whole old list or whole new list, and a large ranking never
    /// holds one long transaction. Each transaction is retried as a whole; a conflict on a
    /// row an interrupted attempt already wrote is ignored.
    pub async fn save_recommendations(
        &self,
        run: (&str, &str),
        model_version: &str,
        rows: &[RecommendationRow],
    ) -> Result<()> {
        let (run_id, step_id) = run;
        let now = now_ms();
        self.retry(|| {
            sqlx::query("DELETE FROM recommendations WHERE run_id = $1 AND step_id = $2")
                .bind(run_id)
                .bind(step_id)
                .execute(&self.pool)
        })
        .await?;
        for chunk in user_chunks(rows, ROWS_PER_TRANSACTION) {
            self.retry(|| async move {
                let mut tx = self.pool.begin().await?;
                for part in chunk.chunks(ROWS_PER_STATEMENT) {
                    let sql = format!(
                        "INSERT INTO recommendations (run_id, step_id, model_version, user_id, \
                         position, item_id, score, reason, created_at) VALUES {} \
                         ON CONFLICT DO NOTHING",
                        value_rows(part.len(), 9)
                    );
                    // Built from constants and placeholder numbers only: nothing of the data.
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for r in part {
                        q = q
                            .bind(run_id)
                            .bind(step_id)
                            .bind(model_version)
                            .bind(&r.user)
                            .bind(r.position)
                            .bind(&r.item)
                            .bind(r.score)
                            .bind(&r.reason)
                            .bind(now);
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// The distinct (user, item) pairs the store holds events for, of any kind and weight
    /// and at any time: what a user has already seen. `users` limits it to those users.
    pub async fn items_read(&self, users: Option<&[String]>) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        let Some(users) = users else {
            let rows = self
                .retry(|| {
                    sqlx::query("SELECT DISTINCT user_id, item_id FROM interactions")
                        .fetch_all(&self.pool)
                })
                .await?;
            for r in &rows {
                out.push((r.try_get(0)?, r.try_get(1)?));
            }
            return Ok(out);
        };
        for part in users.chunks(500) {
            let list = numbered(1, part.len());
            let sql = format!(
                "SELECT DISTINCT user_id, item_id FROM interactions WHERE user_id IN ({list})"
            );
            let rows = self
                .retry(|| {
                    // Built from placeholder numbers only: nothing of the data.
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
                    for u in part {
                        q = q.bind(u);
                    }
                    q.fetch_all(&self.pool)
                })
                .await?;
            for r in &rows {
                out.push((r.try_get(0)?, r.try_get(1)?));
            }
        }
        Ok(out)
    }

    /// The latest stored recommendations for `user` (those of the newest step that ranked
    /// them), best first.
    pub async fn recommendations_for(&self, user: &str) -> Result<Vec<StoredRecommendation>> {
        let newest = self
            .retry(|| {
                sqlx::query(
                    "SELECT run_id, step_id FROM recommendations WHERE user_id = $1 \
                     ORDER BY created_at DESC, run_id DESC, step_id DESC LIMIT 1",
                )
                .bind(user)
                .fetch_optional(&self.pool)
            })
            .await?;
        let Some(newest) = newest else {
            return Ok(Vec::new());
        };
        let (run_id, step_id): (String, String) = (newest.try_get(0)?, newest.try_get(1)?);
        let rows = self
            .retry(|| {
                sqlx::query(
                    "SELECT run_id, step_id, model_version, user_id, position, item_id, score, \
                     reason, created_at FROM recommendations \
                     WHERE user_id = $1 AND run_id = $2 AND step_id = $3 ORDER BY position",
                )
                .bind(user)
                .bind(&run_id)
                .bind(&step_id)
                .fetch_all(&self.pool)
            })
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredRecommendation {
                    run_id: r.try_get(0)?,
                    step_id: r.try_get(1)?,
                    model_version: r.try_get(2)?,
                    row: RecommendationRow {
                        user: r.try_get(3)?,
                        position: r.try_get(4)?,
                        item: r.try_get(5)?,
                        score: r.try_get(6)?,
                        reason: r.try_get(7)?,
                    },
                    created_at: r.try_get(8)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user: &str, position: i64) -> RecommendationRow {
        RecommendationRow {
            user: user.into(),
            position,
            item: format!("i{position}"),
            score: 1.0,
            reason: String::new(),
        }
    }

    #[test]
    fn chunks_end_at_a_user_boundary() {
        let rows: Vec<_> = ["a", "a", "a", "b", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, u)| row(u, i as i64))
            .collect();
        let sizes: Vec<_> = user_chunks(&rows, 2).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [3, 2, 1]);
        let sizes: Vec<_> = user_chunks(&rows, 4).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [5, 1]);
        assert!(user_chunks(&[], 4).is_empty());
        let total: usize = user_chunks(&rows, 1).iter().map(|c| c.len()).sum();
        assert_eq!(total, rows.len());
    }
}

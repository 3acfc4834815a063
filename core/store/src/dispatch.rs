//! The coordinator's side of the work queue: queue a step's next attempt again, learn which
//! tasks finished, cancel a run's tasks, see what workers are running, and wait for
//! PostgreSQL's notifications instead of polling in a tight loop.

use std::time::Duration;

use sqlx::Row;

use crate::queue::{task_from_row, TASK_COLUMNS};
use crate::sql::{numbered, Backend, Store};
use crate::{now_ms, Result, TaskRecord};

/// The channel workers notify when they finish a task (its payload: the run id).
pub const DONE_CHANNEL: &str = "mediaflow_done";

/// Ids per `IN (…)` list.
const PER_STATEMENT: usize = 400;

/// A task some worker is running now.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RunningTask {
    pub worker: String,
    pub run_id: String,
    pub step_id: String,
    pub item: Option<usize>,
    pub started_at: Option<i64>,
}

impl Store {
    /// Queues task `id` again for its step's next attempt (after a failure the step may
    /// retry), with `payload`: ready, without its last result, with room for one more
    /// claim. `false`: it was not finished.
    pub async fn requeue_task(&self, id: &str, payload: &serde_json::Value) -> Result<bool> {
        let payload = payload.to_string();
        let done = self
            .retry(|| {
                sqlx::query(
                    "UPDATE task_queue SET state = 'ready', result = NULL, worker = NULL, \
                     lease_until = NULL, finished_at = NULL, enqueued_at = $1, payload = $2, \
                     max_attempts = max_attempts + 1 \
                     WHERE id = $3 AND state IN ('failed', 'succeeded', 'cancelled')",
                )
                .bind(now_ms())
                .bind(&payload)
                .bind(id)
                .execute(&self.pool)
            })
            .await?;
        // Best effort: workers also look at least once a second.
        let _ = self.notify_queue().await;
        Ok(done.rows_affected() == 1)
    }

    /// Cancels every unfinished task of `run_id`: ready ones are never claimed, and the
    /// workers running the others find their lease refused and stop.
    pub async fn cancel_run_tasks(&self, run_id: &str) -> Result<u64> {
        self.cancel_tasks("run_id", run_id).await
    }

    /// Cancels task `id` if it is not finished. `true`: it was cancelled here.
    pub async fn cancel_task(&self, id: &str) -> Result<bool> {
        Ok(self.cancel_tasks("id", id).await? == 1)
    }

    /// Cancels the unfinished tasks whose `column` (a constant) is `value`.
    async fn cancel_tasks(&self, column: &'static str, value: &str) -> Result<u64> {
        let sql = format!(
            "UPDATE task_queue SET state = 'cancelled', finished_at = $1, lease_until = NULL \
             WHERE {column} = $2 AND state IN ('ready', 'running')"
        );
        let done = self
            .retry(|| {
                // Built from constants only.
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(now_ms())
                    .bind(value)
                    .execute(&self.pool)
            })
            .await?;
        Ok(done.rows_affected())
    }

    /// Of the tasks `ids`, those that are finished.
    pub async fn finished_tasks(&self, ids: &[String]) -> Result<Vec<TaskRecord>> {
        let mut out = Vec::new();
        for part in ids.chunks(PER_STATEMENT) {
            let sql = format!(
                "SELECT {TASK_COLUMNS} FROM task_queue WHERE id IN ({}) \
                 AND state IN ('succeeded', 'failed', 'cancelled')",
                numbered(1, part.len())
            );
            let rows = self
                .retry(|| {
                    // Built from placeholder numbers and constants only.
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
                    for id in part {
                        q = q.bind(id);
                    }
                    q.fetch_all(&self.pool)
                })
                .await?;
            for r in &rows {
                out.push(task_from_row(r)?);
            }
        }
        Ok(out)
    }

    /// Every task being run now, by worker.
    pub async fn running_tasks(&self) -> Result<Vec<RunningTask>> {
        let rows = self
            .retry(|| {
                sqlx::query(
                    "SELECT worker, run_id, step_id, item_index, started_at FROM task_queue \
                     WHERE state = 'running' ORDER BY worker, started_at",
                )
                .fetch_all(&self.pool)
            })
            .await?;
        rows.iter()
            .map(|r| {
                Ok(RunningTask {
                    worker: r.try_get::<Option<String>, _>(0)?.unwrap_or_default(),
                    run_id: r.try_get(1)?,
                    step_id: r.try_get(2)?,
                    item: usize::try_from(r.try_get::<i64, _>(3)?).ok(),
                    started_at: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Tells the coordinator of `run_id` that one of its tasks finished (PostgreSQL).
    pub async fn notify_done(&self, run_id: &str) -> Result<()> {
        if self.backend() == Backend::Postgres {
            self.retry(|| {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(DONE_CHANNEL)
                    .bind(run_id)
                    .execute(&self.pool)
            })
            .await?;
        }
        Ok(())
    }

    /// Listens on `channel`: on PostgreSQL a `LISTEN` connection of its own; on SQLite
    /// (one machine, no notifications) a listener that only waits out its timeout.
    pub async fn listen(&self, channel: &str) -> Listener {
        let mut l = Listener {
            inner: None,
            channel: channel.to_owned(),
            url: self.connect_url().to_owned(),
            postgres: self.backend() == Backend::Postgres,
        };
        l.connect(Duration::from_secs(5)).await;
        l
    }
}

/// Waits for notifications on one channel, or for a timeout, whichever comes first. A lost
/// connection is opened again on the next wait: a notification missed meanwhile costs one
/// timeout, never a task (callers look at the table after every wake-up).
pub struct Listener {
    inner: Option<sqlx::postgres::PgListener>,
    channel: String,
    url: String,
    postgres: bool,
}

impl Listener {
    /// Opens the `LISTEN` connection (PostgreSQL), giving up after `within`.
    async fn connect(&mut self, within: Duration) {
        if self.inner.is_some() || !self.postgres {
            return;
        }
        let opened = tokio::time::timeout(within, async {
            let mut l = sqlx::postgres::PgListener::connect(&self.url).await.ok()?;
            l.listen(&self.channel).await.ok()?;
            Some(l)
        })
        .await;
        self.inner = opened.ok().flatten();
    }

    /// Returns the notification's payload, or `None` after `timeout` (or a lost
    /// connection).
    pub async fn wait(&mut self, timeout: Duration) -> Option<String> {
        let started = std::time::Instant::now();
        self.connect(timeout).await;
        let timeout = timeout.saturating_sub(started.elapsed());
        let Some(l) = self.inner.as_mut() else {
            tokio::time::sleep(timeout).await;
            return None;
        };
        match tokio::time::timeout(timeout, l.try_recv()).await {
            Ok(Ok(Some(n))) => Some(n.payload().to_owned()),
            // The connection was lost: `try_recv` reconnects on its next call.
            Ok(Ok(None)) => None,
            Ok(Err(_)) => {
                self.inner = None;
                None
            }
            Err(_) => None,
        }
    }
}

//! The work queue of distributed runs, on the run database: a coordinator enqueues each
//! ready step (each `for_each` item) as a task; `mediaflow worker` processes claim the tasks
//! they can run, hold a lease they renew, and complete them.
//!
//! A claim bumps the task's `generation`, its fencing token. Renewing a lease and
//! completing a task only succeed with the generation of the claim that is still current,
//! so a worker that was paused past its lease (and whose task was claimed again elsewhere)
//! finds its late result refused instead of overwriting the newer one.
//!
//! PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, so workers never wait on each other's
//! candidates; SQLite (one machine) serialises writers, and the claiming `UPDATE` checks the
//! task is still ready.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::sql::{numbered, Backend, Store};
use crate::{now_ms, Result, StoreError};

/// The channel a coordinator notifies when it queues work (PostgreSQL `NOTIFY`).
pub const QUEUE_CHANNEL: &str = "mediaflow_queue";

/// Candidates a claim looks at per round.
const CANDIDATES: i64 = 32;

/// A task to queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewTask {
    pub id: String,
    pub run_id: String,
    pub step_id: String,
    pub item: Option<usize>,
    pub plugin: String,
    /// What a worker must have besides the plugin (`model:whisper-base`, `tag:gpu`).
    pub needs: Vec<String>,
    pub payload: Value,
    pub max_attempts: u32,
}

/// Where a task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    Ready,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Ready => "ready",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Option<TaskState> {
        Some(match s {
            "ready" => TaskState::Ready,
            "running" => TaskState::Running,
            "succeeded" => TaskState::Succeeded,
            "failed" => TaskState::Failed,
            "cancelled" => TaskState::Cancelled,
            _ => return None,
        })
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled
        )
    }
}

/// A task as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskRecord {
    pub id: String,
    pub run_id: String,
    pub step_id: String,
    pub item: Option<usize>,
    pub plugin: String,
    pub needs: Vec<String>,
    pub payload: Value,
    pub state: TaskState,
    pub attempts: u32,
    pub max_attempts: u32,
    /// The fencing token of the current (or last) claim.
    pub generation: i64,
    pub worker: Option<String>,
    pub lease_until: Option<i64>,
    pub result: Option<Value>,
    pub enqueued_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// A worker as it announces itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub id: String,
    pub host: String,
    /// The plugins it can run.
    pub plugins: Vec<String>,
    /// What else it has (`model:whisper-base`, `tag:gpu`).
    pub capabilities: Vec<String>,
    pub concurrency: u32,
    /// Tasks it is running now.
    pub running: u32,
    pub started_at: i64,
    pub heartbeat_at: i64,
}

/// What requeuing the tasks of lost workers did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requeued {
    /// Put back to be claimed again.
    pub ready: Vec<String>,
    /// Out of attempts: failed.
    pub failed: Vec<String>,
}

pub(crate) const TASK_COLUMNS: &str =
    "id, run_id, step_id, item_index, plugin, needs, payload, state, \
     attempts, max_attempts, generation, worker, lease_until, result, enqueued_at, started_at, \
     finished_at";

fn corrupt(what: &str, source: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        what: what.to_owned(),
        source,
    }
}

pub(crate) fn task_from_row(r: &AnyRow) -> Result<TaskRecord> {
    let item: i64 = r.try_get(3)?;
    let needs: String = r.try_get(5)?;
    let payload: String = r.try_get(6)?;
    let state: String = r.try_get(7)?;
    let result: Option<String> = r.try_get(13)?;
    Ok(TaskRecord {
        id: r.try_get(0)?,
        run_id: r.try_get(1)?,
        step_id: r.try_get(2)?,
        item: usize::try_from(item).ok(),
        plugin: r.try_get(4)?,
        needs: serde_json::from_str(&needs).map_err(|e| corrupt("task_queue.needs", e))?,
        payload: serde_json::from_str(&payload).map_err(|e| corrupt("task_queue.payload", e))?,
        state: TaskState::parse(&state).unwrap_or(TaskState::Failed),
        attempts: u32::try_from(r.try_get::<i64, _>(8)?).unwrap_or(u32::MAX),
        max_attempts: u32::try_from(r.try_get::<i64, _>(9)?).unwrap_or(u32::MAX),
        generation: r.try_get(10)?,
        worker: r.try_get(11)?,
        lease_until: r.try_get(12)?,
        result: result
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| corrupt("task_queue.result", e))?,
        enqueued_at: r.try_get(14)?,
        started_at: r.try_get(15)?,
        finished_at: r.try_get(16)?,
    })
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Store {
    /// Queues `task` (a task with the same run, step and item is left as it is: queuing
    /// is safe to repeat). Returns whether it was new.
    pub async fn enqueue_task(&self, task: &NewTask) -> Result<bool> {
        let needs = serde_json::to_string(&task.needs).unwrap_or_else(|_| "[]".into());
        let payload = task.payload.to_string();
        let item = task.item.map_or(-1, |i| i as i64);
        let now = now_ms();
        let done = self
            .retry(|| {
                sqlx::query(
                    "INSERT INTO task_queue (id, run_id, step_id, item_index, plugin, needs, \
                     payload, state, attempts, max_attempts, generation, enqueued_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'ready', 0, $8, 0, $9) \
                     ON CONFLICT (run_id, step_id, item_index) DO NOTHING",
                )
                .bind(&task.id)
                .bind(&task.run_id)
                .bind(&task.step_id)
                .bind(item)
                .bind(&task.plugin)
                .bind(&needs)
                .bind(&payload)
                .bind(i64::from(task.max_attempts.max(1)))
                .bind(now)
                .execute(&self.pool)
            })
            .await?;
        // Best effort: the task is queued; workers also look at least once a second.
        let _ = self.notify_queue().await;
        Ok(done.rows_affected() == 1)
    }

    /// Wakes listening workers (PostgreSQL); nothing on SQLite, whose workers poll.
    pub async fn notify_queue(&self) -> Result<()> {
        if self.backend() == Backend::Postgres {
            self.retry(|| {
                sqlx::query("SELECT pg_notify($1, '')")
                    .bind(QUEUE_CHANNEL)
                    .execute(&self.pool)
            })
            .await?;
        }
        Ok(())
    }

    /// Claims the oldest ready task `worker` can run (its plugin among `worker.plugins`,
    /// its needs among `worker.capabilities`), leased for `lease`.
    pub async fn claim_task(
        &self,
        worker: &WorkerInfo,
        lease: Duration,
    ) -> Result<Option<TaskRecord>> {
        if worker.plugins.is_empty() {
            return Ok(None);
        }
        let caps: HashSet<&str> = worker.capabilities.iter().map(String::as_str).collect();
        let list = numbered(1, worker.plugins.len());
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let select = format!(
            "SELECT id, needs FROM task_queue WHERE state = 'ready' AND plugin IN ({list}) \
             ORDER BY enqueued_at, id LIMIT {CANDIDATES}{lock}"
        );
        let claim = format!(
            "UPDATE task_queue SET state = 'running', worker = $1, lease_until = $2, \
             started_at = $3, generation = generation + 1, attempts = attempts + 1 \
             WHERE id = $4 AND state = 'ready' RETURNING {TASK_COLUMNS}"
        );
        let claimed = self
            .retry(|| {
                let (select, claim, caps) = (&select, &claim, &caps);
                async move {
                    let mut tx = self.pool.begin().await?;
                    // Built from placeholder numbers and constants only: nothing of the data.
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(select.clone()));
                    for p in &worker.plugins {
                        q = q.bind(p);
                    }
                    let candidates = q.fetch_all(&mut *tx).await?;
                    let mut chosen = None;
                    for c in &candidates {
                        let needs: String = c.try_get(1)?;
                        let needs: Vec<String> = serde_json::from_str(&needs).unwrap_or_default();
                        if needs.iter().all(|n| caps.contains(n.as_str())) {
                            chosen = Some(c.try_get::<String, _>(0)?);
                            break;
                        }
                    }
                    let Some(id) = chosen else {
                        tx.commit().await?;
                        return Ok(None);
                    };
                    let now = now_ms();
                    let row = sqlx::query(sqlx::AssertSqlSafe(claim.clone()))
                        .bind(&worker.id)
                        .bind(now.saturating_add(millis(lease)))
                        .bind(now)
                        .bind(&id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(row)
                }
            })
            .await?;
        claimed.as_ref().map(task_from_row).transpose()
    }

    /// Extends the lease of the claim `generation` of task `id`. `false`: the claim is no
    /// longer current (the lease ran out and the task was requeued or claimed again).
    pub async fn renew_task(&self, id: &str, generation: i64, lease: Duration) -> Result<bool> {
        let until = now_ms().saturating_add(millis(lease));
        let done = self
            .retry(|| {
                sqlx::query(
                    "UPDATE task_queue SET lease_until = $1 \
                     WHERE id = $2 AND generation = $3 AND state = 'running'",
                )
                .bind(until)
                .bind(id)
                .bind(generation)
                .execute(&self.pool)
            })
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Finishes the claim `generation` of task `id` with `state` and `result`. `false`: the
    /// result was refused, because that claim is no longer current.
    pub async fn complete_task(
        &self,
        id: &str,
        generation: i64,
        state: TaskState,
        result: &Value,
    ) -> Result<bool> {
        let result = result.to_string();
        let now = now_ms();
        let done = self
            .retry(|| {
                sqlx::query(
                    "UPDATE task_queue SET state = $1, result = $2, finished_at = $3, \
                     lease_until = NULL, payload = '{}' \
                     WHERE id = $4 AND generation = $5 AND state = 'running' RETURNING run_id",
                )
                .bind(state.as_str())
                .bind(&result)
                .bind(now)
                .bind(id)
                .bind(generation)
                .fetch_optional(&self.pool)
            })
            .await?;
        match done {
            Some(row) => {
                let run_id: String = row.try_get(0)?;
                // Best effort: the coordinator also looks at the table on its own.
                let _ = self.notify_done(&run_id).await;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Puts back the running tasks whose lease ran out before `now` (their worker died or
    /// stalled): ready again while attempts remain, failed otherwise.
    pub async fn requeue_expired(&self, now: i64) -> Result<Requeued> {
        let ids = |rows: Vec<AnyRow>| -> Result<Vec<String>> {
            rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
        };
        let ready = self
            .retry(|| {
                sqlx::query(
                    "UPDATE task_queue SET state = 'ready', worker = NULL, lease_until = NULL \
                     WHERE state = 'running' AND lease_until < $1 AND attempts < max_attempts \
                     RETURNING id",
                )
                .bind(now)
                .fetch_all(&self.pool)
            })
            .await?;
        let error = serde_json::json!({
            "code": "worker_lost",
            "message": "the worker running it stopped answering on every attempt",
        })
        .to_string();
        let failed = self
            .retry(|| {
                sqlx::query(
                    "UPDATE task_queue SET state = 'failed', result = $1, finished_at = $2, \
                     lease_until = NULL, payload = '{}' WHERE state = 'running' AND lease_until < $2 \
                     AND attempts >= max_attempts RETURNING id",
                )
                .bind(&error)
                .bind(now)
                .fetch_all(&self.pool)
            })
            .await?;
        let out = Requeued {
            ready: ids(ready)?,
            failed: ids(failed)?,
        };
        if !out.ready.is_empty() {
            let _ = self.notify_queue().await;
        }
        if !out.failed.is_empty() {
            let _ = self.notify_done("").await;
        }
        Ok(out)
    }

    /// One task.
    pub async fn task(&self, id: &str) -> Result<Option<TaskRecord>> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM task_queue WHERE id = $1");
        let row = self
            .retry(|| {
                // Built from constants only.
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(id)
                    .fetch_optional(&self.pool)
            })
            .await?;
        row.as_ref().map(task_from_row).transpose()
    }

    /// The tasks of `run_id`, by step and item.
    pub async fn run_tasks(&self, run_id: &str) -> Result<Vec<TaskRecord>> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM task_queue WHERE run_id = $1 ORDER BY step_id, item_index"
        );
        let rows = self
            .retry(|| {
                // Built from constants only.
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(run_id)
                    .fetch_all(&self.pool)
            })
            .await?;
        rows.iter().map(task_from_row).collect()
    }

    /// Announces `worker`, or refreshes its heartbeat and what it is running.
    pub async fn worker_heartbeat(&self, worker: &WorkerInfo) -> Result<()> {
        let plugins = serde_json::to_string(&worker.plugins).unwrap_or_else(|_| "[]".into());
        let caps = serde_json::to_string(&worker.capabilities).unwrap_or_else(|_| "[]".into());
        let now = now_ms();
        self.retry(|| {
            sqlx::query(
                "INSERT INTO queue_workers (id, host, plugins, capabilities, concurrency, \
                 running, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (id) DO UPDATE SET plugins = excluded.plugins, \
                 capabilities = excluded.capabilities, concurrency = excluded.concurrency, \
                 running = excluded.running, heartbeat_at = excluded.heartbeat_at",
            )
            .bind(&worker.id)
            .bind(&worker.host)
            .bind(&plugins)
            .bind(&caps)
            .bind(i64::from(worker.concurrency))
            .bind(i64::from(worker.running))
            .bind(worker.started_at)
            .bind(now)
            .execute(&self.pool)
        })
        .await?;
        Ok(())
    }

    /// Workers heard from at or after `since` (Unix ms), by id.
    pub async fn live_workers(&self, since: i64) -> Result<Vec<WorkerInfo>> {
        let rows = self
            .retry(|| {
                sqlx::query(
                    "SELECT id, host, plugins, capabilities, concurrency, running, started_at, \
                     heartbeat_at FROM queue_workers WHERE heartbeat_at >= $1 ORDER BY id",
                )
                .bind(since)
                .fetch_all(&self.pool)
            })
            .await?;
        rows.iter()
            .map(|r| {
                let plugins: String = r.try_get(2)?;
                let caps: String = r.try_get(3)?;
                Ok(WorkerInfo {
                    id: r.try_get(0)?,
                    host: r.try_get(1)?,
                    plugins: serde_json::from_str(&plugins)
                        .map_err(|e| corrupt("queue_workers.plugins", e))?,
                    capabilities: serde_json::from_str(&caps)
                        .map_err(|e| corrupt("queue_workers.capabilities", e))?,
                    concurrency: u32::try_from(r.try_get::<i64, _>(4)?).unwrap_or(0),
                    running: u32::try_from(r.try_get::<i64, _>(5)?).unwrap_or(0),
                    started_at: r.try_get(6)?,
                    heartbeat_at: r.try_get(7)?,
                })
            })
            .collect()
    }

    /// Forgets worker `id` (it stopped cleanly).
    pub async fn remove_worker(&self, id: &str) -> Result<()> {
        self.retry(|| {
            sqlx::query("DELETE FROM queue_workers WHERE id = $1")
                .bind(id)
                .execute(&self.pool)
        })
        .await?;
        Ok(())
    }
}

//! Schedule ticks: which ticks of which workflow's schedules a service fired, skipped or
//! queued, and the runs they started. A tick is claimed with one `INSERT` on its primary
//! key, so of several services on one database exactly one handles it.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::sql::Store;
use crate::{now_ms, Result};

/// One handled tick.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TickRecord {
    pub workflow: String,
    pub schedule: i32,
    /// The tick, in ms since the epoch.
    pub tick: i64,
    /// `started`, `skipped` (the previous run was still going) or `queued`.
    pub status: String,
    pub run_id: Option<String>,
    pub fired_by: String,
    pub created_at: i64,
}

macro_rules! tick_columns {
    () => {
        "workflow, schedule, tick, status, run_id, fired_by, created_at"
    };
}

fn from_row(row: &AnyRow) -> Result<TickRecord> {
    Ok(TickRecord {
        workflow: row.try_get(0)?,
        schedule: row.try_get(1)?,
        tick: row.try_get(2)?,
        status: row.try_get(3)?,
        run_id: row.try_get(4)?,
        fired_by: row.try_get(5)?,
        created_at: row.try_get(6)?,
    })
}

impl Store {
    /// Claims a tick for `by` with `status`; `false` when another service (or an earlier
    /// pass) had it already.
    pub async fn claim_tick(
        &self,
        workflow: &str,
        schedule: i32,
        tick: i64,
        status: &str,
        by: &str,
    ) -> Result<bool> {
        let done = self
            .retry(|| {
                sqlx::query(
                    "INSERT INTO schedule_ticks (workflow, schedule, tick, status, fired_by, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (workflow, schedule, tick) DO NOTHING",
                )
                .bind(workflow)
                .bind(schedule)
                .bind(tick)
                .bind(status)
                .bind(by)
                .bind(now_ms())
                .execute(&self.pool)
            })
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Moves a claimed tick from status `from` to `to` with its run; `false` when it was not
    /// in `from` (another service moved it first).
    pub async fn update_tick(
        &self,
        workflow: &str,
        schedule: i32,
        tick: i64,
        from: &str,
        to: &str,
        run_id: Option<&str>,
    ) -> Result<bool> {
        let done = self
            .retry(|| {
                sqlx::query(
                    "UPDATE schedule_ticks SET status = $5, run_id = COALESCE($6, run_id) \
                     WHERE workflow = $1 AND schedule = $2 AND tick = $3 AND status = $4",
                )
                .bind(workflow)
                .bind(schedule)
                .bind(tick)
                .bind(from)
                .bind(to)
                .bind(run_id)
                .execute(&self.pool)
            })
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives back a tick claimed as `started` whose run could not be created.
    pub async fn unclaim_tick(&self, workflow: &str, schedule: i32, tick: i64) -> Result<()> {
        self.retry(|| {
            sqlx::query(
                "DELETE FROM schedule_ticks WHERE workflow = $1 AND schedule = $2 AND tick = $3 \
                 AND status = 'started' AND run_id IS NULL",
            )
            .bind(workflow)
            .bind(schedule)
            .bind(tick)
            .execute(&self.pool)
        })
        .await?;
        Ok(())
    }

    /// The latest tick handled for this schedule (ms), if any.
    pub async fn last_tick(&self, workflow: &str, schedule: i32) -> Result<Option<i64>> {
        let row = self
            .retry(|| {
                sqlx::query(
                    "SELECT MAX(tick) FROM schedule_ticks WHERE workflow = $1 AND schedule = $2",
                )
                .bind(workflow)
                .bind(schedule)
                .fetch_one(&self.pool)
            })
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Whether a run this schedule started is still running.
    pub async fn schedule_running(&self, workflow: &str, schedule: i32) -> Result<bool> {
        let row = self
            .retry(|| {
                sqlx::query(
                    "SELECT COUNT(*) FROM schedule_ticks t JOIN runs r ON r.id = t.run_id \
                     WHERE t.workflow = $1 AND t.schedule = $2 AND r.status = 'running'",
                )
                .bind(workflow)
                .bind(schedule)
                .fetch_one(&self.pool)
            })
            .await?;
        let n: i64 = row.try_get(0)?;
        Ok(n > 0)
    }

    /// The ticks of `workflow` (every workflow with `None`), oldest first.
    pub async fn ticks(&self, workflow: Option<&str>) -> Result<Vec<TickRecord>> {
        let rows = self
            .retry(|| {
                sqlx::query(concat!(
                    "SELECT ",
                    tick_columns!(),
                    " FROM schedule_ticks WHERE ($1 IS NULL OR workflow = $1) \
                     ORDER BY tick, workflow, schedule"
                ))
                .bind(workflow)
                .fetch_all(&self.pool)
            })
            .await?;
        rows.iter().map(from_row).collect()
    }
}

//! Firing the `schedule:` entries of the workflows directory.
//!
//! A pass at instant `now` looks at each schedule's ticks since the last pass. Ticks at
//! most [`ON_TIME`] old fire; older ones were missed (no service was running) and follow
//! the schedule's `catch_up`. Each tick is claimed with one `INSERT` on its
//! `(workflow, schedule, tick)` row, so of several services on one database exactly one
//! fires it, and a restarted service knows where its schedules stopped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mediaflow_workflow::{CatchUp, Concurrency, Plan, Schedule};

use crate::Service;

/// How old a tick may be at a pass and still run as on time rather than missed.
pub const ON_TIME: Duration = Duration::from_secs(60);

/// Where each schedule's passes have got to: `(workflow, schedule index)` → instant.
#[derive(Default)]
pub struct Cursors(Mutex<HashMap<(String, usize), DateTime<Utc>>>);

impl Cursors {
    fn get(&self, key: &(String, usize)) -> Option<DateTime<Utc>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
    }

    fn set(&self, key: (String, usize), at: DateTime<Utc>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, at);
    }
}

fn from_ms(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

/// Which of `due` (oldest first) to fire at `now` under `catch_up`.
pub fn to_fire(due: &[DateTime<Utc>], now: DateTime<Utc>, catch_up: CatchUp) -> Vec<DateTime<Utc>> {
    let cutoff = now - chrono::Duration::from_std(ON_TIME).unwrap_or_default();
    let (missed, on_time): (Vec<_>, Vec<_>) = due.iter().partition(|t| **t < cutoff);
    let mut out: Vec<DateTime<Utc>> = match catch_up {
        CatchUp::All => missed,
        CatchUp::Latest => missed.last().copied().into_iter().collect(),
        CatchUp::None => Vec::new(),
    };
    out.extend(on_time);
    out
}

impl Service {
    /// One scheduling pass at `now`: re-reads the workflows directory, fires the ticks due
    /// since the last pass, and starts queued ticks whose previous run has ended. Returns
    /// what it did, as lines for the service's log. `serve` runs a pass every second on
    /// the system clock; tests pass the instants they want.
    pub async fn schedule_pass(&self, now: DateTime<Utc>) -> Vec<String> {
        let catalog = self.catalog().clone();
        let mut log = tokio::task::spawn_blocking(move || catalog.refresh())
            .await
            .unwrap_or_default();
        for (name, plan) in self.catalog().scheduled() {
            for s in &plan.schedules {
                if let Err(e) = self.schedule_one(&name, &plan, s, now, &mut log).await {
                    log.push(format!(
                        "schedule {} of `{name}` could not fire: {e}",
                        s.index
                    ));
                }
            }
        }
        log
    }

    async fn schedule_one(
        &self,
        name: &str,
        plan: &Arc<Plan>,
        s: &Schedule,
        now: DateTime<Utc>,
        log: &mut Vec<String>,
    ) -> Result<(), crate::ApiError> {
        let key = (name.to_owned(), s.index);
        let index = s.index as i32;
        let cursor = match self.0.cursors.get(&key) {
            Some(c) => c,
            None => {
                // First pass for this schedule in this process: go on from the last tick
                // any service handled, unless missed ticks are not wanted.
                let last = self.store().last_tick(name, index).await?;
                match (s.catch_up, last.and_then(from_ms)) {
                    (CatchUp::None, _) | (_, None) => now,
                    (_, Some(last)) => last,
                }
            }
        };
        let due = s.ticks_between(cursor, now, mediaflow_workflow::schedule::MAX_CATCH_UP);
        for tick in to_fire(&due, now, s.catch_up) {
            self.fire(name, plan, s, tick, log).await?;
        }
        self.0.cursors.set(key, now.max(cursor));
        if s.concurrency == Concurrency::Queue {
            self.start_queued(name, plan, s, log).await?;
        }
        Ok(())
    }

    /// Handles one tick: claims it and starts its run, or records it skipped or queued.
    async fn fire(
        &self,
        name: &str,
        plan: &Arc<Plan>,
        s: &Schedule,
        tick: DateTime<Utc>,
        log: &mut Vec<String>,
    ) -> Result<(), crate::ApiError> {
        let index = s.index as i32;
        let busy = s.concurrency != Concurrency::Allow
            && self.store().schedule_running(name, index).await?;
        let status = match (busy, s.concurrency) {
            (true, Concurrency::Skip) => "skipped",
            (true, Concurrency::Queue) => "queued",
            _ => "started",
        };
        let ms = tick.timestamp_millis();
        let worker = self.engine().options().worker.clone();
        if !self
            .store()
            .claim_tick(name, index, ms, status, &worker)
            .await?
        {
            return Ok(()); // another service has this tick
        }
        match status {
            "started" => {
                let started = self.start_tick(name, plan, s, ms, log).await;
                if started.is_err() {
                    // Give the tick back, so this or another service can fire it.
                    let _ = self.store().unclaim_tick(name, index, ms).await;
                }
                started
            }
            other => {
                log.push(format!(
                    "`{name}` tick {tick} {other}: its previous run is still going"
                ));
                Ok(())
            }
        }
    }

    /// Starts the run of a claimed tick and links it to the tick.
    async fn start_tick(
        &self,
        name: &str,
        plan: &Arc<Plan>,
        s: &Schedule,
        ms: i64,
        log: &mut Vec<String>,
    ) -> Result<(), crate::ApiError> {
        let created = self
            .engine()
            .create_run(plan.clone(), s.inputs.clone())
            .await?;
        let run_id = created.run_id.clone();
        self.store()
            .update_tick(
                name,
                s.index as i32,
                ms,
                "started",
                "started",
                Some(&run_id),
            )
            .await?;
        let engine = self.engine().clone();
        self.spawn_run(run_id.clone(), plan, move |ctl| async move {
            engine.drive_created(created, ctl).await
        })?;
        let at = from_ms(ms).map(|t| t.to_rfc3339()).unwrap_or_default();
        log.push(format!("`{name}` tick {at}: started run {run_id}"));
        Ok(())
    }

    /// Starts the oldest queued tick of a schedule once its previous run has ended.
    async fn start_queued(
        &self,
        name: &str,
        plan: &Arc<Plan>,
        s: &Schedule,
        log: &mut Vec<String>,
    ) -> Result<(), crate::ApiError> {
        let index = s.index as i32;
        if self.store().schedule_running(name, index).await? {
            return Ok(());
        }
        let queued = self
            .store()
            .ticks(Some(name))
            .await?
            .into_iter()
            .find(|t| t.schedule == index && t.status == "queued");
        let Some(t) = queued else { return Ok(()) };
        if self
            .store()
            .update_tick(name, index, t.tick, "queued", "started", None)
            .await?
        {
            self.start_tick(name, plan, s, t.tick, log).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn missed_ticks_follow_catch_up_and_on_time_ones_always_fire() {
        let now = at("2027-01-01T10:00:30Z");
        let due = [
            at("2027-01-01T07:00:00Z"),
            at("2027-01-01T08:00:00Z"),
            at("2027-01-01T09:00:00Z"),
            at("2027-01-01T10:00:00Z"),
        ];
        assert_eq!(to_fire(&due, now, CatchUp::All), due.to_vec());
        assert_eq!(to_fire(&due, now, CatchUp::Latest), vec![due[2], due[3]]);
        assert_eq!(to_fire(&due, now, CatchUp::None), vec![due[3]]);
        assert!(to_fire(&[], now, CatchUp::All).is_empty());
    }
}

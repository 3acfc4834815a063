//! Running one step (or one `for_each` item): resolve, validate, cache, attempt, retry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mediaflow_plugin_api::{format_duration, ArtifactRef, LogLevel, PluginError, Value};
use mediaflow_store::{now_ms, NewTask, StepRecord, StepStatus};
use mediaflow_workflow::PlanStep;
use rand::Rng;

use crate::call::{call_plugin, Call, Host};
use crate::error::StepError;
use crate::events::{emit, sink, Event, LogLine};
use crate::keys::cache_key;
use crate::remote::{self, Remote};
use crate::shared::RunShared;

/// One item's task: which step, which item, and the expression context it resolves in.
pub(crate) struct Job {
    pub shared: Arc<RunShared>,
    pub step: usize,
    pub item: Option<usize>,
    /// The expression context: inputs, the deps' outputs, `item`, `run`.
    pub ctx: Value,
    /// In a distributed run: the worker that ran the last attempt, and how many claims the
    /// queue counted (attempts lost with a dead worker included).
    pub ran_on: std::sync::Mutex<Option<(Option<String>, u32)>>,
}

/// How one step or item ended.
#[derive(Clone, Debug)]
pub(crate) struct Outcome {
    pub status: StepStatus,
    pub outputs: Option<Value>,
    pub error: Option<StepError>,
    pub attempts: u32,
    pub cache_key: Option<String>,
}

impl Outcome {
    pub fn failed(error: impl Into<StepError>, attempts: u32, key: Option<String>) -> Self {
        Outcome {
            status: StepStatus::Failed,
            outputs: None,
            error: Some(error.into()),
            attempts,
            cache_key: key,
        }
    }

    fn cancelled(attempts: u32, key: Option<String>) -> Self {
        Outcome {
            status: StepStatus::Cancelled,
            ..Outcome::failed(PluginError::cancelled(), attempts, key)
        }
    }

    fn succeeded(status: StepStatus, outputs: Value, attempts: u32, key: String) -> Self {
        Outcome {
            status,
            outputs: Some(outputs),
            error: None,
            attempts,
            cache_key: Some(key),
        }
    }
}

/// A finished item: which step and item, and how it ended.
#[derive(Debug)]
pub(crate) struct Done {
    pub step: usize,
    pub item: Option<usize>,
    pub outcome: Outcome,
}

enum Attempt {
    Ok(Value),
    Err(PluginError),
    Cancelled,
}

impl Job {
    fn spec(&self) -> &PlanStep {
        &self.shared.plan.steps[self.step]
    }

    fn record(&self, status: StepStatus) -> StepRecord {
        let mut r = StepRecord::new(&self.shared.run_id, &self.spec().id, self.item, status);
        r.worker = Some(self.shared.worker.clone());
        r
    }

    fn ran_on(&self) -> Option<(Option<String>, u32)> {
        self.ran_on
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn log(&self, level: LogLevel, message: String) {
        let _ = self.shared.logs.send(LogLine {
            step: self.spec().id.clone(),
            item: self.item,
            level,
            message,
        });
    }

    /// Runs the item to its end and stores the result before returning.
    pub async fn run(self) -> Done {
        let started = now_ms();
        let clock = Instant::now();
        let mut outcome = self.execute(started).await;
        let mut rec = self.record(outcome.status);
        rec.attempts = outcome.attempts;
        if let Some((worker, claims)) = self.ran_on() {
            rec.ran_on = worker;
            rec.attempts = rec.attempts.max(claims);
        }
        rec.cache_key = outcome.cache_key.clone();
        rec.outputs = outcome.outputs.clone();
        rec.error = outcome.error.as_ref().map(StepError::to_json);
        rec.started_at = Some(started);
        rec.finished_at = Some(now_ms());
        rec.duration_ms = Some(clock.elapsed().as_millis() as i64);
        let stored = if self.shared.store_is_down() {
            Err("the database is unreachable".to_owned())
        } else {
            self.shared.store.upsert_step(&rec).await.map_err(|e| {
                let message = e.to_string();
                // The store stayed down past its retries: nothing else could be recorded
                // either. The run stops; it stays resumable and this step runs again.
                self.shared.store_failed(e);
                message
            })
        };
        if let Err(e) = stored {
            let e = PluginError::new("store", format!("cannot store the step's result: {e}"));
            outcome = Outcome::failed(e, outcome.attempts, outcome.cache_key);
        }
        emit(
            &self.shared.events,
            Event::StepFinished {
                step: self.spec().id.clone(),
                item: self.item,
                status: outcome.status,
                duration_ms: clock.elapsed().as_millis() as i64,
                error: outcome.error.as_ref().map(StepError::message),
            },
        );
        Done {
            step: self.step,
            item: self.item,
            outcome,
        }
    }

    async fn execute(&self, started: i64) -> Outcome {
        let spec = self.spec();
        let plan = &self.shared.plan;
        let desc = spec.plugin.descriptor();
        let config = match plan.evaluator.resolve(&spec.with, &self.ctx) {
            Ok(c) => c,
            Err(e) => {
                let e = PluginError::new(
                    "expression",
                    format!("cannot evaluate `{}`: {}", e.expression, e.message),
                );
                return Outcome::failed(e, 0, None);
            }
        };
        // A process plugin's `validate` waits for its process synchronously: off the async
        // workers, or the items of a large `for_each` can park every worker at once.
        let (checked_plan, step, resolved) = (plan.clone(), self.step, config.clone());
        let checked =
            tokio::task::spawn_blocking(move || checked_plan.steps[step].check_config(&resolved))
                .await
                .unwrap_or_else(|e| Err(vec![format!("the settings check failed: {e}")]));
        if let Err(problems) = checked {
            let e = PluginError::new(
                "invalid_config",
                format!(
                    "invalid `with:` for `{}`: {}",
                    desc.name,
                    problems.join("; ")
                ),
            )
            .with_help(format!(
                "the values come from expressions at {}:{}; check what they produce",
                plan.file, spec.line
            ));
            return Outcome::failed(e, 0, None);
        }
        if let Err(e) = self.check_artifacts(&config).await {
            return Outcome::failed(e, 0, None);
        }
        let cacheable = self.shared.use_cache && spec.cache && desc.cacheable;
        let key = cache_key(&desc.identity(), &desc.version, &config);
        if cacheable && self.shared.cache_reads {
            if let Ok(Some(outputs)) = self.shared.store.cache_get(&key).await {
                return Outcome::succeeded(StepStatus::Cached, outputs, 0, key);
            }
        }
        let max = spec.retry.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut rec = self.record(StepStatus::Running);
            rec.attempts = attempt;
            rec.started_at = Some(started);
            if self.shared.store_is_down() {
                let e = PluginError::new("store", "the database is unreachable");
                return Outcome::failed(e, attempt, Some(key));
            }
            if let Err(e) = self.shared.store.upsert_step(&rec).await {
                let err = PluginError::new("store", format!("cannot record the step: {e}"));
                self.shared.store_failed(e);
                return Outcome::failed(err, attempt, Some(key));
            }
            emit(
                &self.shared.events,
                Event::StepStarted {
                    step: spec.id.clone(),
                    item: self.item,
                    attempt,
                },
            );
            match self.attempt(config.clone(), attempt).await {
                Attempt::Ok(outputs) => {
                    if cacheable {
                        if let Err(e) = self
                            .shared
                            .store
                            .cache_put(&key, &desc.name, &outputs, &self.shared.run_id, &spec.id)
                            .await
                        {
                            self.log(LogLevel::Warn, format!("cannot write the step cache: {e}"));
                        }
                    }
                    return Outcome::succeeded(StepStatus::Succeeded, outputs, attempt, key);
                }
                Attempt::Cancelled => return Outcome::cancelled(attempt, Some(key)),
                Attempt::Err(e) if e.retryable && attempt < max => {
                    let delay = self.backoff(attempt + 1);
                    self.log(
                        LogLevel::Warn,
                        format!(
                            "attempt {attempt} of {max} failed: {}; retrying in {}",
                            e.message,
                            format_duration(delay)
                        ),
                    );
                    emit(
                        &self.shared.events,
                        Event::StepRetrying {
                            step: spec.id.clone(),
                            item: self.item,
                            attempt,
                            delay_ms: delay.as_millis() as u64,
                            error: e.message.clone(),
                        },
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.shared.cancel.cancelled() => {
                            return Outcome::cancelled(attempt, Some(key));
                        }
                    }
                }
                Attempt::Err(mut e) => {
                    if attempt > 1 {
                        e.message = format!("{} (after {attempt} attempts)", e.message);
                    }
                    return Outcome::failed(e, attempt, Some(key));
                }
            }
        }
    }

    /// Exponential backoff with up to +25% jitter, so retries of many items spread out.
    fn backoff(&self, next: u32) -> Duration {
        retry_delay(&self.spec().retry, next, rand::rng().random_range(0.0..1.0))
    }

    /// Artifact references in the config must exist in the store.
    async fn check_artifacts(&self, config: &Value) -> Result<(), PluginError> {
        for a in ArtifactRef::find_all(config) {
            self.shared.artifacts.path(&a).await.map_err(|_| {
                PluginError::new(
                    "missing_artifact",
                    format!(
                        "artifact {} ({}) is not in the artifact store",
                        a.sha256, a.media_type
                    ),
                )
            })?;
        }
        Ok(())
    }

    /// One call of the plugin under the concurrency limits, the step timeout and
    /// cancellation. A timeout and a cancellation take the same path: the plugin is told to
    /// stop and gets a grace period to do so before its task is dropped.
    async fn attempt(&self, config: Value, attempt: u32) -> Attempt {
        let spec = self.spec();
        let shared = &self.shared;
        let token = shared.cancel.child_token();
        let global = match spec.plugin.descriptor().batches {
            true => shared.batched.clone(),
            false => Some(shared.global.clone()),
        };
        let _global = match global {
            Some(s) => tokio::select! {
                p = s.acquire_owned() => p.ok(),
                _ = shared.cancel.cancelled() => return Attempt::Cancelled,
            },
            None => None,
        };
        let _plugin = match shared.plugin_limits.get(&spec.plugin.descriptor().name) {
            Some(s) => tokio::select! {
                p = s.clone().acquire_owned() => p.ok(),
                _ = shared.cancel.cancelled() => return Attempt::Cancelled,
            },
            None => None,
        };
        if let Some(remote) = &shared.remote {
            return self.remote_attempt(remote, config, attempt).await;
        }
        let cx = crate::call::context(
            Host {
                store: &shared.store,
                artifacts: shared.artifacts.clone(),
                llm: shared.llm.clone(),
                collections: shared.collections.clone(),
                kv_quota: shared.kv_quota,
            },
            Call {
                run_id: &shared.run_id,
                step_id: &spec.id,
                item: self.item,
                attempt,
                permissions: spec.permissions.clone(),
            },
            spec.plugin.as_ref(),
            token.clone(),
            sink(
                &spec.id,
                self.item,
                &shared.events,
                &shared.logs,
                shared.log_quota,
            ),
        );
        let called = call_plugin(
            spec.plugin.clone(),
            config,
            cx,
            token,
            spec.timeout,
            shared.grace,
            &shared.cancel,
        )
        .await;
        match called.into_result() {
            Ok(outputs) => Attempt::Ok(outputs),
            Err(Some(e)) => Attempt::Err(e),
            Err(None) => Attempt::Cancelled,
        }
    }
}

impl Job {
    /// One attempt in a distributed run: the step queued for a worker (its input artifacts
    /// published first), its result awaited, and its output artifacts fetched back.
    async fn remote_attempt(&self, remote: &Remote, config: Value, attempt: u32) -> Attempt {
        let spec = self.spec();
        let shared = &self.shared;
        if let Err(e) = remote::publish_all(&remote.artifacts, &config).await {
            return Attempt::Err(e);
        }
        let id = remote::task_id(&shared.run_id, &spec.id, self.item);
        let task = NewTask {
            id: id.clone(),
            run_id: shared.run_id.clone(),
            step_id: spec.id.clone(),
            item: self.item,
            plugin: spec.plugin.descriptor().name.clone(),
            needs: remote::needs(&config, &remote.options.models)
                .into_iter()
                .chain(spec.runs_on.iter().map(|t| format!("tag:{t}")))
                .collect(),
            payload: remote::payload(
                &config,
                attempt,
                spec.timeout,
                &spec.permissions,
                &shared.plan.file,
                spec.line,
            ),
            max_attempts: 1 + remote.options.lost_worker_attempts,
        };
        let done = match remote.submit(task).await {
            Ok(rx) => rx,
            Err(e) => {
                return Attempt::Err(
                    PluginError::new("store", format!("cannot queue the step: {e}")).retryable(),
                )
            }
        };
        let task = tokio::select! {
            t = done => match t {
                Ok(t) => t,
                Err(_) => return Attempt::Cancelled,
            },
            _ = shared.cancel.cancelled() => {
                remote.withdraw(&id).await;
                return Attempt::Cancelled;
            }
        };
        *self.ran_on.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((task.worker.clone(), task.attempts));
        match remote::outcome(&task) {
            Ok(outputs) => match remote::fetch_all(&remote.artifacts, &outputs).await {
                Ok(()) => Attempt::Ok(outputs),
                Err(e) => Attempt::Err(e),
            },
            Err(Some(e)) => Attempt::Err(e),
            Err(None) => Attempt::Cancelled,
        }
    }
}

/// The wait before attempt `next` (2, 3, …): `backoff` doubling per attempt, plus up to 25%
/// jitter (`fraction` in `[0, 1)` picks how much), never more than `max_backoff`.
fn retry_delay(policy: &mediaflow_workflow::RetryPolicy, next: u32, fraction: f64) -> Duration {
    let base = policy.base_delay(next);
    if policy.jitter && !base.is_zero() {
        base.mul_f64(1.0 + 0.25 * fraction.clamp(0.0, 1.0))
            .min(policy.max_backoff)
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::retry_delay;
    use mediaflow_workflow::RetryPolicy;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_jitters_by_at_most_a_quarter_and_stops_at_max_backoff() {
        let ms = Duration::from_millis;
        let policy = RetryPolicy {
            max_attempts: 10,
            backoff: ms(100),
            max_backoff: ms(1000),
            jitter: true,
        };
        for next in 2..=10 {
            let base = ms(100 * (1 << (next - 2))).min(ms(1000));
            let mut seen = Vec::new();
            for i in 0..=100 {
                let d = retry_delay(&policy, next, i as f64 / 101.0);
                assert!(d >= base, "attempt {next}: {d:?} < {base:?}");
                assert!(d <= base.mul_f64(1.25), "attempt {next}: {d:?} over +25%");
                assert!(d <= ms(1000), "attempt {next}: {d:?} over max_backoff");
                seen.push(d);
            }
            if base < ms(800) {
                assert!(seen.first() < seen.last(), "attempt {next}: no jitter");
            }
        }
        let fixed = RetryPolicy {
            jitter: false,
            ..policy
        };
        assert_eq!(retry_delay(&fixed, 2, 0.9), ms(100));
        assert_eq!(retry_delay(&fixed, 3, 0.9), ms(200));
        assert_eq!(retry_delay(&fixed, 9, 0.9), ms(1000));
        assert_eq!(retry_delay(&fixed, 40, 0.9), ms(1000), "no overflow");
    }
}

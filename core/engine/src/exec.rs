//! Running one step (or one `for_each` item): resolve, validate, cache, attempt, retry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mediaflow_plugin_api::{ArtifactRef, Artifacts, LogLevel, PluginError, RunContext, Value};
use mediaflow_store::{now_ms, StepRecord, StepStatus, Store};
use mediaflow_workflow::{Plan, PlanStep};
use rand::Rng;
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::events::{emit, sink, Event, Events, LogLine};
use crate::keys::cache_key;

/// Everything one item's task needs.
pub(crate) struct Job {
    pub plan: Arc<Plan>,
    pub step: usize,
    pub item: Option<usize>,
    /// The expression context: inputs, the deps' outputs, `item`, `run`.
    pub ctx: Value,
    pub run_id: String,
    pub worker: String,
    pub use_cache: bool,
    pub store: Store,
    pub artifacts: Arc<dyn Artifacts>,
    pub global: Arc<Semaphore>,
    pub plugin_limit: Option<Arc<Semaphore>>,
    pub cancel: CancellationToken,
    pub grace: Duration,
    pub events: Events,
    pub logs: mpsc::UnboundedSender<LogLine>,
}

/// How one item ended.
#[derive(Debug)]
pub(crate) struct Done {
    pub step: usize,
    pub item: Option<usize>,
    pub status: StepStatus,
    pub outputs: Option<Value>,
    pub error: Option<Value>,
    pub attempts: u32,
}

pub(crate) fn error_json(e: &PluginError) -> Value {
    let mut v = json!({"code": e.code, "message": e.message});
    if let Some(h) = &e.help {
        v["help"] = json!(h);
    }
    v
}

enum Attempt {
    Ok(Value),
    Err(PluginError),
    Cancelled,
}

impl Job {
    fn spec(&self) -> &PlanStep {
        &self.plan.steps[self.step]
    }

    fn record(&self, status: StepStatus) -> StepRecord {
        let mut r = StepRecord::new(&self.run_id, &self.spec().id, self.item, status);
        r.worker = Some(self.worker.clone());
        r
    }

    fn log(&self, level: LogLevel, message: String) {
        let _ = self.logs.send(LogLine {
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
        let (status, outputs, error, attempts, key) = self.execute(started).await;
        let mut rec = self.record(status);
        rec.attempts = attempts;
        rec.cache_key = key;
        rec.outputs = outputs.clone();
        rec.error = error.clone();
        rec.started_at = Some(started);
        rec.finished_at = Some(now_ms());
        rec.duration_ms = Some(clock.elapsed().as_millis() as i64);
        let stored = self.store.upsert_step(&rec).await;
        let (status, error) = match stored {
            Ok(()) => (status, error),
            Err(e) => (
                StepStatus::Failed,
                Some(
                    json!({"code": "store", "message": format!("cannot store the step's result: {e}")}),
                ),
            ),
        };
        emit(
            &self.events,
            Event::StepFinished {
                step: self.spec().id.clone(),
                item: self.item,
                status,
                duration_ms: clock.elapsed().as_millis() as i64,
                error: error
                    .as_ref()
                    .and_then(|e| e.get("message"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            },
        );
        Done {
            step: self.step,
            item: self.item,
            status,
            outputs,
            error,
            attempts,
        }
    }

    #[allow(clippy::type_complexity)]
    async fn execute(
        &self,
        started: i64,
    ) -> (
        StepStatus,
        Option<Value>,
        Option<Value>,
        u32,
        Option<String>,
    ) {
        let spec = self.spec();
        let desc = spec.plugin.descriptor();
        let fail = |e: PluginError| (StepStatus::Failed, None, Some(error_json(&e)), 0, None);
        let config = match self.plan.evaluator.resolve(&spec.with, &self.ctx) {
            Ok(c) => c,
            Err(e) => {
                return fail(PluginError::fatal(
                    "expression",
                    format!("cannot evaluate `{}`: {}", e.expression, e.message),
                ))
            }
        };
        if let Err(problems) = spec.check_config(&config) {
            return fail(
                PluginError::fatal(
                    "invalid_config",
                    format!(
                        "invalid `with:` for `{}`: {}",
                        desc.name,
                        problems.join("; ")
                    ),
                )
                .with_help(format!(
                    "the values come from expressions at {}:{}; check what they produce",
                    self.plan.file, spec.line
                )),
            );
        }
        if let Err(e) = self.check_artifacts(&config).await {
            return fail(e);
        }
        let cacheable = self.use_cache && spec.cache && desc.cacheable;
        let key = cache_key(&desc.name, &desc.version, &config);
        if cacheable {
            if let Ok(Some(outputs)) = self.store.cache_get(&key).await {
                return (StepStatus::Cached, Some(outputs), None, 0, Some(key));
            }
        }
        let max = spec.retry.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut rec = self.record(StepStatus::Running);
            rec.attempts = attempt;
            rec.started_at = Some(started);
            if let Err(e) = self.store.upsert_step(&rec).await {
                let err = PluginError::new("store", format!("cannot record the step: {e}"));
                return (
                    StepStatus::Failed,
                    None,
                    Some(error_json(&err)),
                    attempt,
                    Some(key),
                );
            }
            emit(
                &self.events,
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
                            .store
                            .cache_put(&key, &desc.name, &outputs, &self.run_id, &spec.id)
                            .await
                        {
                            self.log(LogLevel::Warn, format!("cannot write the step cache: {e}"));
                        }
                    }
                    return (
                        StepStatus::Succeeded,
                        Some(outputs),
                        None,
                        attempt,
                        Some(key),
                    );
                }
                Attempt::Cancelled => {
                    let e = PluginError::cancelled();
                    return (
                        StepStatus::Cancelled,
                        None,
                        Some(error_json(&e)),
                        attempt,
                        Some(key),
                    );
                }
                Attempt::Err(e) if e.retryable && attempt < max => {
                    let delay = self.backoff(attempt + 1);
                    self.log(
                        LogLevel::Warn,
                        format!(
                            "attempt {attempt} of {max} failed: {}; retrying in {delay:?}",
                            e.message
                        ),
                    );
                    emit(
                        &self.events,
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
                        _ = self.cancel.cancelled() => {
                            let e = PluginError::cancelled();
                            return (StepStatus::Cancelled, None, Some(error_json(&e)), attempt, Some(key));
                        }
                    }
                }
                Attempt::Err(e) => {
                    let mut err = error_json(&e);
                    if attempt > 1 {
                        err["message"] = json!(format!("{} (after {attempt} attempts)", e.message));
                    }
                    return (StepStatus::Failed, None, Some(err), attempt, Some(key));
                }
            }
        }
    }

    /// Exponential backoff with up to +25% jitter, so retries of many items spread out.
    fn backoff(&self, next: u32) -> Duration {
        let policy = &self.spec().retry;
        let base = policy.base_delay(next);
        if policy.jitter && !base.is_zero() {
            let extra = rand::rng().random_range(0.0..0.25);
            base.mul_f64(1.0 + extra)
        } else {
            base
        }
    }

    /// Artifact references in the config must exist in the store.
    async fn check_artifacts(&self, config: &Value) -> Result<(), PluginError> {
        let mut stack = vec![config];
        while let Some(v) = stack.pop() {
            if let Some(a) = ArtifactRef::from_value(v) {
                self.artifacts.path(&a).await.map_err(|_| {
                    PluginError::fatal(
                        "missing_artifact",
                        format!(
                            "artifact {} ({}) is not in the artifact store",
                            a.sha256, a.media_type
                        ),
                    )
                })?;
                continue;
            }
            match v {
                Value::Array(items) => stack.extend(items),
                Value::Object(map) => stack.extend(map.values()),
                _ => {}
            }
        }
        Ok(())
    }

    /// One call of the plugin under the concurrency limits, the step timeout and
    /// cancellation (with a grace period for the plugin to stop by itself).
    async fn attempt(&self, config: Value, attempt: u32) -> Attempt {
        let spec = self.spec();
        let token = self.cancel.child_token();
        let _global = tokio::select! {
            p = self.global.clone().acquire_owned() => p.ok(),
            _ = self.cancel.cancelled() => return Attempt::Cancelled,
        };
        let _plugin = match &self.plugin_limit {
            Some(s) => tokio::select! {
                p = s.clone().acquire_owned() => p.ok(),
                _ = self.cancel.cancelled() => return Attempt::Cancelled,
            },
            None => None,
        };
        let cx = RunContext::new(
            self.run_id.clone(),
            spec.id.clone(),
            self.item,
            attempt,
            token.clone(),
            sink(&spec.id, self.item, &self.events, &self.logs),
            self.artifacts.clone(),
        )
        .with_permissions(spec.permissions.clone())
        .with_kv(Arc::new(crate::kv::StoreKv {
            store: self.store.clone(),
            namespace: spec.plugin.descriptor().name.clone(),
        }));
        let plugin = spec.plugin.clone();
        // The plugin runs on its own task, so a panic inside it is caught and becomes a
        // step error instead of taking the engine down.
        let mut handle = tokio::spawn(async move { plugin.run(config, &cx).await });
        let timeout = spec.timeout.unwrap_or(Duration::MAX);
        let deadline = tokio::time::sleep(timeout.min(Duration::from_secs(100 * 365 * 86400)));
        tokio::pin!(deadline);
        let outcome = tokio::select! {
            r = &mut handle => Some(r),
            _ = &mut deadline => {
                token.cancel();
                handle.abort();
                return Attempt::Err(PluginError::new(
                    "timeout",
                    format!("timed out after {}", humanize(timeout)),
                ).with_help("raise `timeout:` on the step if it needs longer"));
            }
            _ = self.cancel.cancelled() => None,
        };
        let joined = match outcome {
            Some(r) => r,
            None => {
                token.cancel();
                match tokio::time::timeout(self.grace, &mut handle).await {
                    Ok(r) => r,
                    Err(_) => {
                        handle.abort();
                        return Attempt::Cancelled;
                    }
                }
            }
        };
        match joined {
            // A result that arrives within the grace period after a cancel is kept.
            Ok(Ok(outputs)) if outputs.is_object() => Attempt::Ok(outputs),
            Ok(Ok(other)) => Attempt::Err(PluginError::fatal(
                "bad_outputs",
                format!(
                    "plugin `{}` returned {other}, not an object of outputs",
                    spec.plugin.descriptor().name
                ),
            )),
            Ok(Err(e)) if e.code == "cancelled" && self.cancel.is_cancelled() => Attempt::Cancelled,
            Ok(Err(e)) => Attempt::Err(e),
            Err(join) if join.is_panic() => {
                Attempt::Err(PluginError::from_panic(join.into_panic().as_ref()))
            }
            Err(_) => Attempt::Cancelled,
        }
    }
}

pub(crate) fn humanize(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

//! The run loop: starts every step whose dependencies are done, fans `for_each` steps out,
//! and records each state change before anything that depends on it starts.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use mediaflow_plugin_api::{Artifacts, PluginError, Value};
use mediaflow_store::{now_ms, RunStatus, StepRecord, StepStatus, Store};
use mediaflow_workflow::Plan;
use serde_json::{json, Map};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::events::{emit, Event, Events, LogLine};
use crate::exec::{error_json, humanize, Done, Job};
use crate::EngineError;

/// Result of one step (all items together for `for_each`).
#[derive(Clone, Debug)]
pub(crate) struct StepResult {
    pub status: StepStatus,
    pub outputs: Value,
}

/// Per-step progress of a `for_each` fan-out.
struct FanOut {
    items: Vec<Value>,
    results: Vec<Option<Done>>,
    queue: VecDeque<usize>,
    running: usize,
    limit: usize,
    started: i64,
}

/// Which steps have all their dependencies done: a count of unfinished deps per step.
struct Readiness {
    waiting: Vec<usize>,
    dependants: Vec<Vec<usize>>,
    ready: VecDeque<usize>,
}

impl Readiness {
    fn new(plan: &Plan) -> Self {
        let n = plan.steps.len();
        let mut dependants = vec![Vec::new(); n];
        let mut waiting = vec![0; n];
        for (i, s) in plan.steps.iter().enumerate() {
            waiting[i] = s.deps.len();
            for &d in &s.deps {
                dependants[d].push(i);
            }
        }
        let ready = (0..n).filter(|i| waiting[*i] == 0).collect();
        Readiness {
            waiting,
            dependants,
            ready,
        }
    }

    fn next(&mut self) -> Option<usize> {
        self.ready.pop_front()
    }

    /// Step `i` has its result: its dependants wait for one step less.
    fn complete(&mut self, i: usize) {
        for &d in &self.dependants[i] {
            self.waiting[d] -= 1;
            if self.waiting[d] == 0 {
                self.ready.push_back(d);
            }
        }
    }
}

pub(crate) struct Scheduler {
    pub plan: Arc<Plan>,
    pub run_id: String,
    pub inputs: Map<String, Value>,
    pub store: Store,
    pub artifacts: Arc<dyn Artifacts>,
    pub worker: String,
    pub use_cache: bool,
    pub max_parallel: usize,
    pub grace: Duration,
    pub events: Events,
    pub logs: mpsc::UnboundedSender<LogLine>,
    /// Results kept from before a crash: the step never runs again.
    pub prior_steps: HashMap<String, StepResult>,
    /// Item results kept from before a crash, by step and item.
    pub prior_items: HashMap<(String, usize), Done>,
}

/// How the run ended, before outputs are evaluated.
pub(crate) struct Ending {
    pub status: RunStatus,
    pub error: Option<Value>,
    pub results: Vec<Option<StepResult>>,
}

impl Scheduler {
    pub async fn run(
        mut self,
        user_cancel: CancellationToken,
        timeout: Option<Duration>,
    ) -> Result<Ending, EngineError> {
        let n = self.plan.steps.len();
        let mut results: Vec<Option<StepResult>> = vec![None; n];
        let mut fanouts: HashMap<usize, FanOut> = HashMap::new();
        let mut tasks: JoinSet<Done> = JoinSet::new();
        let global = Arc::new(Semaphore::new(self.max_parallel.max(1)));
        let mut plugin_limits: HashMap<String, Arc<Semaphore>> = HashMap::new();
        for s in &self.plan.steps {
            let d = s.plugin.descriptor();
            if let Some(limit) = d.max_concurrency {
                plugin_limits
                    .entry(d.name.clone())
                    .or_insert_with(|| Arc::new(Semaphore::new(limit.max(1))));
            }
        }
        let cancel = user_cancel.child_token();
        let deadline =
            tokio::time::sleep(timeout.unwrap_or(Duration::from_secs(100 * 365 * 86400)));
        tokio::pin!(deadline);
        let mut timed_out = false;

        let mut ready = Readiness::new(&self.plan);
        for (i, step) in self.plan.steps.iter().enumerate() {
            if let Some(prior) = self.prior_steps.remove(&step.id) {
                results[i] = Some(prior);
                ready.complete(i);
            }
        }

        loop {
            // Start everything that is ready.
            while !cancel.is_cancelled() {
                let Some(i) = ready.next() else { break };
                if results[i].is_some() {
                    continue;
                }
                if let Some(r) = self.start_step(i, &results, &mut fanouts).await? {
                    results[i] = Some(r);
                    ready.complete(i);
                    continue;
                }
                if let Some(f) = fanouts.get_mut(&i) {
                    while f.running < f.limit {
                        let Some(item) = f.queue.pop_front() else {
                            break;
                        };
                        f.running += 1;
                        let job = self.job(
                            i,
                            Some(item),
                            &results,
                            &f.items[item],
                            &global,
                            &plugin_limits,
                            &cancel,
                        );
                        tasks.spawn(job.run());
                    }
                    if f.queue.is_empty() && f.running == 0 {
                        let f = fanouts.remove(&i).expect("fan-out exists");
                        results[i] = Some(self.finish_fanout(i, f).await?);
                        ready.complete(i);
                    }
                } else {
                    let job = self.job(
                        i,
                        None,
                        &results,
                        &Value::Null,
                        &global,
                        &plugin_limits,
                        &cancel,
                    );
                    tasks.spawn(job.run());
                }
            }
            if tasks.is_empty() {
                break;
            }
            let joined = tokio::select! {
                j = tasks.join_next() => j,
                _ = &mut deadline, if !timed_out => {
                    timed_out = true;
                    cancel.cancel();
                    continue;
                }
            };
            let Some(joined) = joined else { break };
            let done = match joined {
                Ok(d) => d,
                // Tasks catch plugin panics themselves; this is a bug in the engine.
                Err(e) => return Err(EngineError::Internal(format!("a step task died: {e}"))),
            };
            let i = done.step;
            match done.item {
                None => {
                    results[i] = Some(StepResult {
                        status: done.status,
                        outputs: done.outputs.unwrap_or(Value::Null),
                    });
                    ready.complete(i);
                }
                Some(item) => {
                    let Some(f) = fanouts.get_mut(&i) else {
                        continue;
                    };
                    f.running -= 1;
                    f.results[item] = Some(done);
                    while f.running < f.limit && !cancel.is_cancelled() {
                        let Some(next) = f.queue.pop_front() else {
                            break;
                        };
                        f.running += 1;
                        let job = self.job(
                            i,
                            Some(next),
                            &results,
                            &f.items[next],
                            &global,
                            &plugin_limits,
                            &cancel,
                        );
                        tasks.spawn(job.run());
                    }
                    if f.running == 0 && (f.queue.is_empty() || cancel.is_cancelled()) {
                        let f = fanouts.remove(&i).expect("fan-out exists");
                        results[i] = Some(self.finish_fanout(i, f).await?);
                        ready.complete(i);
                    }
                }
            }
        }

        // Whatever never ran is recorded, so the run's record is complete.
        let reason = if timed_out {
            format!(
                "the run timed out after {}",
                humanize(timeout.unwrap_or_default())
            )
        } else {
            "the run was cancelled".to_owned()
        };
        for (step, result) in self.plan.steps.iter().zip(results.iter_mut()) {
            if result.is_none() {
                let mut rec = StepRecord::new(&self.run_id, &step.id, None, StepStatus::Cancelled);
                rec.error = Some(json!({"code": "cancelled", "message": reason}));
                rec.finished_at = Some(now_ms());
                self.store.upsert_step(&rec).await?;
                *result = Some(StepResult {
                    status: StepStatus::Cancelled,
                    outputs: Value::Null,
                });
            }
        }
        let failed: Vec<&str> = self
            .plan
            .steps
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.as_ref().is_some_and(|r| r.status == StepStatus::Failed))
            .map(|(s, _)| s.id.as_str())
            .collect();
        let (status, error) = if timed_out {
            (
                RunStatus::Failed,
                Some(json!({"code": "run_timeout", "message": reason})),
            )
        } else if user_cancel.is_cancelled() {
            (
                RunStatus::Cancelled,
                Some(json!({"code": "cancelled", "message": reason})),
            )
        } else if !failed.is_empty() {
            let list = failed
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ");
            (
                RunStatus::Failed,
                Some(
                    json!({"code": "step_failed", "message": format!("failed steps: {list}"), "steps": failed}),
                ),
            )
        } else {
            (RunStatus::Succeeded, None)
        };
        Ok(Ending {
            status,
            error,
            results,
        })
    }

    /// The expression context of step `i`: inputs, the outputs of its deps, `run`.
    fn context(&self, i: usize, results: &[Option<StepResult>]) -> Value {
        let mut steps = Map::new();
        for &d in &self.plan.steps[i].deps {
            if let Some(r) = &results[d] {
                steps.insert(
                    self.plan.steps[d].id.clone(),
                    json!({"outputs": r.outputs, "status": r.status.as_str()}),
                );
            }
        }
        json!({
            "inputs": self.inputs,
            "steps": steps,
            "run": {"id": self.run_id, "workflow": self.plan.name},
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn job(
        &self,
        i: usize,
        item: Option<usize>,
        results: &[Option<StepResult>],
        item_value: &Value,
        global: &Arc<Semaphore>,
        limits: &HashMap<String, Arc<Semaphore>>,
        cancel: &CancellationToken,
    ) -> Job {
        let mut ctx = self.context(i, results);
        if let Some(idx) = item {
            ctx["item"] = item_value.clone();
            ctx["item_index"] = json!(idx);
        }
        let spec = &self.plan.steps[i];
        Job {
            plan: self.plan.clone(),
            step: i,
            item,
            ctx,
            run_id: self.run_id.clone(),
            worker: self.worker.clone(),
            use_cache: self.use_cache,
            store: self.store.clone(),
            artifacts: self.artifacts.clone(),
            global: global.clone(),
            plugin_limit: limits.get(&spec.plugin.descriptor().name).cloned(),
            cancel: cancel.clone(),
            grace: self.grace,
            events: self.events.clone(),
            logs: self.logs.clone(),
        }
    }

    async fn settle(
        &self,
        i: usize,
        status: StepStatus,
        error: Option<Value>,
    ) -> Result<StepResult, EngineError> {
        let id = &self.plan.steps[i].id;
        let mut rec = StepRecord::new(&self.run_id, id, None, status);
        rec.error = error.clone();
        rec.finished_at = Some(now_ms());
        self.store.upsert_step(&rec).await?;
        emit(
            &self.events,
            Event::StepFinished {
                step: id.clone(),
                item: None,
                status,
                duration_ms: 0,
                error: error
                    .and_then(|e| e.get("message").and_then(Value::as_str).map(str::to_owned)),
            },
        );
        Ok(StepResult {
            status,
            outputs: Value::Null,
        })
    }

    /// Decides what a ready step does. `Some` when it ends at once (skipped, upstream
    /// failure, bad `when`/`for_each`, empty fan-out); `None` when tasks must run.
    async fn start_step(
        &self,
        i: usize,
        results: &[Option<StepResult>],
        fanouts: &mut HashMap<usize, FanOut>,
    ) -> Result<Option<StepResult>, EngineError> {
        let spec = &self.plan.steps[i];
        let dep_status = |s: StepStatus| {
            spec.deps
                .iter()
                .find(|d| results[**d].as_ref().is_some_and(|r| r.status == s))
                .map(|d| self.plan.steps[*d].id.clone())
        };
        if let Some(up) =
            dep_status(StepStatus::Failed).or_else(|| dep_status(StepStatus::Cancelled))
        {
            let e = json!({"code": "upstream_failed", "message": format!("not run: upstream step `{up}` failed")});
            return self.settle(i, StepStatus::Failed, Some(e)).await.map(Some);
        }
        if let Some(up) = dep_status(StepStatus::Skipped) {
            let e = json!({"code": "upstream_skipped", "message": format!("skipped because `{up}` was skipped")});
            return self.settle(i, StepStatus::Skipped, Some(e)).await.map(Some);
        }
        let ctx = self.context(i, results);
        if let Some(code) = &spec.when {
            match self.plan.evaluator.eval_bool(code, &ctx) {
                Ok(true) => {}
                Ok(false) => {
                    let e = json!({"code": "condition_false", "message": format!("`when: {code}` is false")});
                    return self.settle(i, StepStatus::Skipped, Some(e)).await.map(Some);
                }
                Err(e) => {
                    let err = PluginError::fatal(
                        "expression",
                        format!("cannot evaluate `when: {code}`: {}", e.message),
                    );
                    return self
                        .settle(i, StepStatus::Failed, Some(error_json(&err)))
                        .await
                        .map(Some);
                }
            }
        }
        let Some(list) = &spec.for_each else {
            return Ok(None);
        };
        let items = match self.plan.evaluator.resolve(list, &ctx) {
            Ok(Value::Array(items)) => items,
            Ok(other) => {
                let kind = mediaflow_plugin_api::ValueType::of(&other);
                let err = PluginError::fatal(
                    "for_each",
                    format!("`for_each` must give a list, got {kind}"),
                );
                return self
                    .settle(i, StepStatus::Failed, Some(error_json(&err)))
                    .await
                    .map(Some);
            }
            Err(e) => {
                let err = PluginError::fatal(
                    "expression",
                    format!("cannot evaluate `for_each`: {}", e.message),
                );
                return self
                    .settle(i, StepStatus::Failed, Some(error_json(&err)))
                    .await
                    .map(Some);
            }
        };
        let mut rec = StepRecord::new(&self.run_id, &spec.id, None, StepStatus::Running);
        rec.started_at = Some(now_ms());
        self.store.upsert_step(&rec).await?;
        let mut f = FanOut {
            results: (0..items.len()).map(|_| None).collect(),
            queue: VecDeque::new(),
            running: 0,
            limit: spec.concurrency.unwrap_or(usize::MAX),
            started: now_ms(),
            items,
        };
        for idx in 0..f.items.len() {
            match self.prior_items.get(&(spec.id.clone(), idx)) {
                Some(d) => {
                    f.results[idx] = Some(Done {
                        step: i,
                        item: Some(idx),
                        status: d.status,
                        outputs: d.outputs.clone(),
                        error: d.error.clone(),
                        attempts: d.attempts,
                    })
                }
                None => f.queue.push_back(idx),
            }
        }
        fanouts.insert(i, f);
        Ok(None)
    }

    /// Gathers a fan-out's items into the step's result (outputs: the list of item outputs).
    async fn finish_fanout(&self, i: usize, f: FanOut) -> Result<StepResult, EngineError> {
        let spec = &self.plan.steps[i];
        let total = f.results.len();
        let mut outputs = Vec::with_capacity(total);
        let mut failed = Vec::new();
        let mut cancelled = false;
        let mut all_cached = total > 0;
        let mut attempts = 0;
        for (idx, r) in f.results.iter().enumerate() {
            match r {
                Some(d) => {
                    attempts = attempts.max(d.attempts);
                    all_cached &= d.status == StepStatus::Cached;
                    match d.status {
                        StepStatus::Failed => failed.push((idx, d.error.clone())),
                        StepStatus::Cancelled => cancelled = true,
                        _ => {}
                    }
                    outputs.push(d.outputs.clone().unwrap_or(Value::Null));
                }
                None => {
                    cancelled = true;
                    outputs.push(Value::Null);
                }
            }
        }
        let (status, error) = if let Some((idx, first)) = failed.first() {
            let msg = first
                .as_ref()
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("failed");
            (
                StepStatus::Failed,
                Some(json!({
                    "code": "items_failed",
                    "message": format!("{} of {total} items failed; item {idx}: {msg}", failed.len()),
                })),
            )
        } else if cancelled {
            (
                StepStatus::Cancelled,
                Some(json!({"code": "cancelled", "message": "the step was cancelled"})),
            )
        } else if all_cached {
            (StepStatus::Cached, None)
        } else {
            (StepStatus::Succeeded, None)
        };
        let outputs = Value::Array(outputs);
        let mut rec = StepRecord::new(&self.run_id, &spec.id, None, status);
        rec.attempts = attempts;
        rec.outputs = Some(outputs.clone());
        rec.error = error.clone();
        rec.started_at = Some(f.started);
        rec.finished_at = Some(now_ms());
        rec.duration_ms = Some(now_ms() - f.started);
        self.store.upsert_step(&rec).await?;
        emit(
            &self.events,
            Event::StepFinished {
                step: spec.id.clone(),
                item: None,
                status,
                duration_ms: now_ms() - f.started,
                error: error
                    .and_then(|e| e.get("message").and_then(Value::as_str).map(str::to_owned)),
            },
        );
        Ok(StepResult { status, outputs })
    }
}

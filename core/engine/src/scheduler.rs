//! The run loop: starts every step whose dependencies are done, fans `for_each` steps out,
//! and records each state change before anything that depends on it starts.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use mediaflow_plugin_api::{PluginError, Value, ValueType};
use mediaflow_store::{now_ms, RunStatus, StepRecord, StepStatus};
use mediaflow_workflow::Plan;
use serde_json::json;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::call::FOREVER;
use crate::error::{RunError, StepError};
use crate::events::{emit, Event};
use crate::exec::{Done, Job, Outcome};
use crate::shared::{expression_context, RunShared, StepResult};
use crate::EngineError;

/// Per-step progress of a `for_each` fan-out.
struct FanOut {
    items: Vec<Value>,
    /// The step's expression context, without `item`.
    ctx: Value,
    results: Vec<Option<Outcome>>,
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

/// How the run ended, before outputs are evaluated.
pub(crate) struct Ending {
    pub status: RunStatus,
    pub error: Option<RunError>,
    pub results: Vec<Option<StepResult>>,
}

pub(crate) struct Scheduler {
    shared: Arc<RunShared>,
    /// Results kept from before a crash: the step never runs again.
    prior_steps: HashMap<String, StepResult>,
    /// Item results kept from before a crash, by step and item.
    prior_items: HashMap<(String, usize), Outcome>,
    results: Vec<Option<StepResult>>,
    fanouts: HashMap<usize, FanOut>,
    tasks: JoinSet<Done>,
    ready: Readiness,
}

impl Scheduler {
    pub fn new(
        shared: Arc<RunShared>,
        prior_steps: HashMap<String, StepResult>,
        prior_items: HashMap<(String, usize), Outcome>,
    ) -> Self {
        let n = shared.plan.steps.len();
        let ready = Readiness::new(&shared.plan);
        Scheduler {
            shared,
            prior_steps,
            prior_items,
            results: vec![None; n],
            fanouts: HashMap::new(),
            tasks: JoinSet::new(),
            ready,
        }
    }

    fn plan(&self) -> &Plan {
        &self.shared.plan
    }

    /// Step `i` is done: record its result and release its dependants.
    fn complete(&mut self, i: usize, result: StepResult) {
        self.results[i] = Some(result);
        self.ready.complete(i);
    }

    pub async fn run(
        mut self,
        user_cancel: CancellationToken,
        timeout: Option<Duration>,
    ) -> Result<Ending, EngineError> {
        match self.drive(timeout).await {
            Ok(timed_out) if !self.shared.store_is_down() => {
                self.end(&user_cancel, timed_out, timeout).await
            }
            driven => {
                // The store stayed down past its retries (or the engine broke): the running
                // steps are told to stop and get their grace, write nothing more, and the
                // run is left as stored, its heartbeat going stale, for `mediaflow resume`.
                let other = match driven {
                    Err(EngineError::Store(e)) => {
                        self.shared.store_failed(e);
                        None
                    }
                    Err(e) => Some(e),
                    Ok(_) => None,
                };
                self.shared.cancel.cancel();
                while self.tasks.join_next().await.is_some() {}
                Err(match (self.shared.take_store_error(), other) {
                    (_, Some(e)) => e,
                    (Some(e), None) => EngineError::Store(e),
                    // `store_down` was set, so its error is there.
                    (None, None) => EngineError::Internal("the store failed".to_owned()),
                })
            }
        }
    }

    /// Runs steps until none is running and none can start; `true` if the run's timeout
    /// passed.
    async fn drive(&mut self, timeout: Option<Duration>) -> Result<bool, EngineError> {
        let cancel = self.shared.cancel.clone();
        let deadline = tokio::time::sleep(timeout.unwrap_or(FOREVER).min(FOREVER));
        tokio::pin!(deadline);
        let mut timed_out = false;

        for i in 0..self.plan().steps.len() {
            let id = self.plan().steps[i].id.clone();
            if let Some(prior) = self.prior_steps.remove(&id) {
                self.complete(i, prior);
            }
        }

        loop {
            if self.shared.store_is_down() {
                return Ok(timed_out);
            }
            // Start everything that is ready.
            while !cancel.is_cancelled() {
                let Some(i) = self.ready.next() else { break };
                if self.results[i].is_some() {
                    continue;
                }
                if let Some(r) = self.start_step(i).await? {
                    self.complete(i, r);
                } else if self.fanouts.contains_key(&i) {
                    self.pump(i).await?;
                } else {
                    let ctx = self.context(i);
                    self.spawn(i, None, ctx);
                }
            }
            if self.tasks.is_empty() {
                break;
            }
            let joined = tokio::select! {
                j = self.tasks.join_next() => j,
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
                    let outputs = done.outcome.outputs.unwrap_or(Value::Null);
                    let status = done.outcome.status;
                    self.complete(i, StepResult { status, outputs });
                }
                Some(item) => {
                    if let Some(f) = self.fanouts.get_mut(&i) {
                        f.running -= 1;
                        f.results[item] = Some(done.outcome);
                        self.pump(i).await?;
                    }
                }
            }
        }
        Ok(timed_out)
    }

    fn spawn(&mut self, step: usize, item: Option<usize>, ctx: Value) {
        let job = Job {
            shared: self.shared.clone(),
            step,
            item,
            ctx,
            ran_on: Default::default(),
        };
        self.tasks.spawn(job.run());
    }

    /// Starts queued items of fan-out `i` up to its limit; once none is running and none
    /// may start, gathers the step's result.
    async fn pump(&mut self, i: usize) -> Result<(), EngineError> {
        let cancelled = self.shared.cancel.is_cancelled();
        let mut start = Vec::new();
        let finished = {
            let Some(f) = self.fanouts.get_mut(&i) else {
                return Ok(());
            };
            while f.running < f.limit && !cancelled {
                let Some(item) = f.queue.pop_front() else {
                    break;
                };
                f.running += 1;
                let mut ctx = f.ctx.clone();
                ctx["item"] = f.items[item].clone();
                ctx["item_index"] = json!(item);
                start.push((item, ctx));
            }
            f.running == 0 && (f.queue.is_empty() || cancelled)
        };
        for (item, ctx) in start {
            self.spawn(i, Some(item), ctx);
        }
        if finished {
            if let Some(f) = self.fanouts.remove(&i) {
                let r = self.finish_fanout(i, f).await?;
                self.complete(i, r);
            }
        }
        Ok(())
    }

    /// Records whatever never ran, and decides the run's status.
    async fn end(
        mut self,
        user_cancel: &CancellationToken,
        timed_out: bool,
        timeout: Option<Duration>,
    ) -> Result<Ending, EngineError> {
        let run_error = if timed_out {
            RunError::Timeout(timeout.unwrap_or_default())
        } else {
            RunError::Cancelled
        };
        let reason = run_error.to_json()["message"]
            .as_str()
            .unwrap_or("the run was cancelled")
            .to_owned();
        for i in 0..self.results.len() {
            if self.results[i].is_none() {
                let error = StepError::RunEnded {
                    reason: reason.clone(),
                };
                let r = self.settle(i, StepStatus::Cancelled, error).await?;
                self.results[i] = Some(r);
            }
        }
        let failed: Vec<String> = self
            .plan()
            .steps
            .iter()
            .zip(&self.results)
            .filter(|(_, r)| r.as_ref().is_some_and(|r| r.status == StepStatus::Failed))
            .map(|(s, _)| s.id.clone())
            .collect();
        let (status, error) = if timed_out {
            (RunStatus::Failed, Some(run_error))
        } else if user_cancel.is_cancelled() {
            (RunStatus::Cancelled, Some(run_error))
        } else if !failed.is_empty() {
            (RunStatus::Failed, Some(RunError::StepsFailed(failed)))
        } else {
            (RunStatus::Succeeded, None)
        };
        Ok(Ending {
            status,
            error,
            results: self.results,
        })
    }

    /// The expression context of step `i`: inputs, the outputs of its deps, `run`.
    fn context(&self, i: usize) -> Value {
        let plan = self.plan();
        let deps = plan.steps[i].deps.iter().filter_map(|&d| {
            self.results[d]
                .as_ref()
                .map(|r| (plan.steps[d].id.as_str(), r))
        });
        expression_context(plan, &self.shared.run_id, &self.shared.inputs, deps)
    }

    /// Ends step `i` without running it (skipped, upstream failure, bad `when`/`for_each`).
    async fn settle(
        &self,
        i: usize,
        status: StepStatus,
        error: StepError,
    ) -> Result<StepResult, EngineError> {
        let id = &self.plan().steps[i].id;
        let mut rec = StepRecord::new(&self.shared.run_id, id, None, status);
        rec.error = Some(error.to_json());
        rec.finished_at = Some(now_ms());
        self.shared.store.upsert_step(&rec).await?;
        emit(
            &self.shared.events,
            Event::StepFinished {
                step: id.clone(),
                item: None,
                status,
                duration_ms: 0,
                error: Some(error.message()),
            },
        );
        Ok(StepResult {
            status,
            outputs: Value::Null,
        })
    }

    /// Decides what a ready step does. `Some` when it ends at once (skipped, upstream
    /// failure, bad `when`/`for_each`, empty fan-out); `None` when tasks must run.
    async fn start_step(&mut self, i: usize) -> Result<Option<StepResult>, EngineError> {
        let plan = self.shared.plan.clone();
        let spec = &plan.steps[i];
        let dep_status = |s: StepStatus| {
            spec.deps
                .iter()
                .find(|d| self.results[**d].as_ref().is_some_and(|r| r.status == s))
                .map(|d| plan.steps[*d].id.clone())
        };
        if let Some(step) =
            dep_status(StepStatus::Failed).or_else(|| dep_status(StepStatus::Cancelled))
        {
            let e = StepError::Upstream { step };
            return self.settle(i, StepStatus::Failed, e).await.map(Some);
        }
        if let Some(step) = dep_status(StepStatus::Skipped) {
            let e = StepError::UpstreamSkipped { step };
            return self.settle(i, StepStatus::Skipped, e).await.map(Some);
        }
        let ctx = self.context(i);
        if let Some(code) = &spec.when {
            match plan.evaluator.eval_bool(code, &ctx) {
                Ok(true) => {}
                Ok(false) => {
                    let e = StepError::ConditionFalse {
                        condition: code.clone(),
                    };
                    return self.settle(i, StepStatus::Skipped, e).await.map(Some);
                }
                Err(e) => {
                    let e = PluginError::new(
                        "expression",
                        format!("cannot evaluate `when: {code}`: {}", e.message),
                    );
                    return self.settle(i, StepStatus::Failed, e.into()).await.map(Some);
                }
            }
        }
        let Some(list) = &spec.for_each else {
            return Ok(None);
        };
        let items = match plan.evaluator.resolve(list, &ctx) {
            Ok(Value::Array(items)) => items,
            Ok(other) => {
                let kind = ValueType::of(&other);
                let e = PluginError::new(
                    "for_each",
                    format!("`for_each` must give a list, got {kind}"),
                );
                return self.settle(i, StepStatus::Failed, e.into()).await.map(Some);
            }
            Err(e) => {
                let e = PluginError::new(
                    "expression",
                    format!("cannot evaluate `for_each`: {}", e.message),
                );
                return self.settle(i, StepStatus::Failed, e.into()).await.map(Some);
            }
        };
        let mut rec = StepRecord::new(&self.shared.run_id, &spec.id, None, StepStatus::Running);
        rec.started_at = Some(now_ms());
        self.shared.store.upsert_step(&rec).await?;
        let mut f = FanOut {
            results: (0..items.len()).map(|_| None).collect(),
            queue: VecDeque::new(),
            running: 0,
            limit: spec.concurrency.unwrap_or(usize::MAX),
            started: now_ms(),
            items,
            ctx,
        };
        for idx in 0..f.items.len() {
            match self.prior_items.remove(&(spec.id.clone(), idx)) {
                Some(prior) => f.results[idx] = Some(prior),
                None => f.queue.push_back(idx),
            }
        }
        self.fanouts.insert(i, f);
        Ok(None)
    }

    /// Gathers a fan-out's items into the step's result (outputs: the list of item outputs).
    async fn finish_fanout(&self, i: usize, f: FanOut) -> Result<StepResult, EngineError> {
        let spec = &self.plan().steps[i];
        let total = f.results.len();
        let mut outputs = Vec::with_capacity(total);
        let mut failed = Vec::new();
        let mut cancelled = false;
        let mut all_cached = total > 0;
        let mut attempts = 0;
        for (idx, r) in f.results.iter().enumerate() {
            match r {
                Some(o) => {
                    attempts = attempts.max(o.attempts);
                    all_cached &= o.status == StepStatus::Cached;
                    match o.status {
                        StepStatus::Failed => failed.push((idx, o.error.clone())),
                        StepStatus::Cancelled => cancelled = true,
                        _ => {}
                    }
                    outputs.push(o.outputs.clone().unwrap_or(Value::Null));
                }
                None => {
                    cancelled = true;
                    outputs.push(Value::Null);
                }
            }
        }
        let (status, error) = if let Some((first, e)) = failed.first() {
            let message = e
                .as_ref()
                .map(StepError::message)
                .unwrap_or_else(|| "failed".to_owned());
            let e = StepError::Items {
                failed: failed.len(),
                total,
                first: *first,
                message,
            };
            (StepStatus::Failed, Some(e))
        } else if cancelled {
            (
                StepStatus::Cancelled,
                Some(StepError::Plugin(PluginError::cancelled())),
            )
        } else if all_cached {
            (StepStatus::Cached, None)
        } else {
            (StepStatus::Succeeded, None)
        };
        let outputs = Value::Array(outputs);
        let mut rec = StepRecord::new(&self.shared.run_id, &spec.id, None, status);
        rec.attempts = attempts;
        rec.outputs = Some(outputs.clone());
        rec.error = error.as_ref().map(StepError::to_json);
        rec.started_at = Some(f.started);
        rec.finished_at = Some(now_ms());
        rec.duration_ms = Some(now_ms() - f.started);
        self.shared.store.upsert_step(&rec).await?;
        emit(
            &self.shared.events,
            Event::StepFinished {
                step: spec.id.clone(),
                item: None,
                status,
                duration_ms: now_ms() - f.started,
                error: error.as_ref().map(StepError::message),
            },
        );
        Ok(StepResult { status, outputs })
    }
}

//! The mediaflow engine: runs a compiled [`Plan`] on tokio, with bounded parallelism,
//! retries with exponential backoff and jitter, step and run timeouts, `when:` conditions,
//! `for_each` fan-out, a content-addressed step cache, cancellation and crash resume.
//!
//! Every state change is committed to the [`Store`] before anything that depends on it
//! starts, so a run killed at any moment can be resumed: finished steps are kept, the
//! interrupted ones run again.

mod call;
mod error;
mod events;
mod exec;
mod keys;
mod kv;
mod llm;
mod remote;
mod report;
mod scheduler;
mod shared;
mod vectors;
pub mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mediaflow_plugin_api::{Artifacts, LlmProvider, Value};
use mediaflow_store::{now_ms, ArtifactStore, RunRecord, RunStatus, Store, StoreError};
use mediaflow_workflow::{InputError, Plan};
use serde_json::{json, Map};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

pub use error::{RunError, StepError};
pub use events::{Event, LogQuota, MAX_LOG_MESSAGE};
pub use keys::{cache_key, canonical_json};
pub use kv::DEFAULT_KV_QUOTA;
pub use llm::PluginLlm;
pub use remote::{can_run, needs, task_id, DispatchOptions};
pub use report::{RunReport, StepReport};
pub use vectors::{normalised, Collections, Snapshot, StoreVectors, EXACT_BELOW};
pub use worker::{Worker, WorkerEvent, WorkerOptions};

use exec::Outcome;
use scheduler::Scheduler;
use shared::{expression_context, RunShared, StepResult};

/// Errors that stop a run from starting or finishing its bookkeeping. A failing step is not
/// one of these: it is recorded in the run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Inputs(#[from] InputError),
    #[error("run `{run_id}` is still running in process {owner} (last heartbeat {age_s}s ago); wait for it, or stop that process first")]
    RunInProgress {
        run_id: String,
        owner: String,
        age_s: i64,
    },
    #[error("run `{run_id}` is of workflow {stored}, but the plan given to resume it is {given}")]
    WrongPlan {
        run_id: String,
        stored: String,
        given: String,
    },
    #[error("run `{run_id}` was claimed by another process at the same moment; that process drives it now")]
    ClaimLost { run_id: String },
    #[error("run `{run_id}` has no step `{step}` to run again")]
    NoSuchStep { run_id: String, step: String },
    #[error("internal error: {0}")]
    Internal(String),
}

/// Proves this process still drives the run, every `every`. When another process owns
/// the run now (fenced), or the store has not taken a heartbeat for `stale_after` (another
/// process may rightly take the run over by then), the run is cancelled and `lost` set,
/// instead of running on beside a new owner.
async fn heartbeats(
    store: Store,
    run_id: String,
    owner: String,
    every: Duration,
    stale_after: Duration,
    cancel: CancellationToken,
    lost: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut tick = tokio::time::interval(every);
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        match store.heartbeat(&run_id, &owner).await {
            Ok(()) => last_ok = tokio::time::Instant::now(),
            Err(StoreError::Fenced { .. }) => break,
            Err(_) if last_ok.elapsed() < stale_after => continue,
            Err(_) => break,
        }
    }
    lost.store(true, std::sync::atomic::Ordering::SeqCst);
    cancel.cancel();
}

/// A stored run's workflow, for the caller to compile before [`Engine::resume`].
#[derive(Clone, Debug)]
pub struct StoredWorkflow {
    pub run: RunRecord,
    /// The file name the run was started from (for diagnostics).
    pub file: String,
    pub yaml: String,
}
/// Engine-wide settings.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Most steps (or items) running at once.
    pub max_parallel: usize,
    /// Hand every step to `mediaflow worker` processes through the store's work queue
    /// instead of running it here (`mediaflow run --distributed`).
    pub distributed: Option<DispatchOptions>,
    /// Skip the step cache for this engine's runs (`--no-cache`).
    pub no_cache: bool,
    /// How long a cancelled step may take to stop by itself before it is dropped.
    pub cancel_grace: Duration,
    /// How often a running run proves it is alive.
    pub heartbeat: Duration,
    /// A run whose heartbeat is older than this may be resumed by another process.
    pub stale_after: Duration,
    /// Names this process in the store (`host:pid`).
    pub worker: String,
    /// Most bytes one plugin's key-value namespace may hold (`MEDIAFLOW_KV_MB`).
    pub kv_quota: u64,
    /// Most log lines and bytes one step attempt may store (`MEDIAFLOW_LOG_LINES`,
    /// `MEDIAFLOW_LOG_KB`); further lines are dropped, with one line that says so.
    pub log_quota: LogQuota,
}

/// `host:pid` of this process.
pub fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host}:{}", std::process::id())
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_parallel: std::thread::available_parallelism()
                .map(|n| n.get() * 4)
                .unwrap_or(8),
            distributed: None,
            no_cache: false,
            cancel_grace: Duration::from_secs(5),
            heartbeat: Duration::from_secs(2),
            stale_after: Duration::from_secs(30),
            worker: worker_id(),
            kv_quota: kv::kv_quota(),
            log_quota: LogQuota::from_env(),
        }
    }
}

/// A run recorded by [`Engine::create_run`], not yet driven.
pub struct CreatedRun {
    pub run_id: String,
    plan: Arc<Plan>,
    inputs: Map<String, Value>,
}

/// Results a resumed run keeps: whole steps and `for_each` items.
#[derive(Default)]
struct Prior {
    steps: HashMap<String, StepResult>,
    items: HashMap<(String, usize), Outcome>,
}

/// Whether the steps a drive runs may take their results from the step cache.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fresh {
    CacheAllowed,
    NoCacheReads,
}

/// Step `from` and every step that depends on it, directly or not, in plan order;
/// `None` when the plan has no step `from`.
pub fn dependants(plan: &Plan, from: &str) -> Option<Vec<String>> {
    let start = plan.steps.iter().position(|s| s.id == from)?;
    let mut hit = vec![false; plan.steps.len()];
    hit[start] = true;
    // Steps are in topological order: a step's deps come before it.
    for i in start + 1..plan.steps.len() {
        hit[i] = plan.steps[i].deps.iter().any(|&d| hit[d]);
    }
    Some(
        plan.steps
            .iter()
            .zip(hit)
            .filter(|(_, h)| *h)
            .map(|(s, _)| s.id.clone())
            .collect(),
    )
}

/// How a caller follows and stops one run.
#[derive(Clone, Default)]
pub struct RunControl {
    /// Cancel this to stop the run (Ctrl-C): running steps are told to stop.
    pub cancel: CancellationToken,
    /// Live events, for progress display.
    pub events: Option<mpsc::UnboundedSender<Event>>,
}

/// The engine: a store, an artifact store, options, and the text generation plugins may
/// reach through [`RunContext::llm`](mediaflow_plugin_api::RunContext::llm).
#[derive(Clone)]
pub struct Engine {
    store: Store,
    artifacts: Arc<ArtifactStore>,
    options: EngineOptions,
    llm: Option<Arc<dyn LlmProvider>>,
    /// The embedding collections' in-memory snapshots, kept across runs.
    collections: Arc<vectors::Collections>,
}

impl Engine {
    pub fn new(store: Store, artifacts: ArtifactStore, options: EngineOptions) -> Self {
        Engine {
            store,
            artifacts: Arc::new(artifacts),
            options,
            llm: None,
            collections: Arc::default(),
        }
    }

    /// Offers `llm` to every step (sandboxed plugins still need `permissions: [llm]`).
    pub fn with_llm(mut self, llm: Option<Arc<dyn LlmProvider>>) -> Self {
        self.llm = llm;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn artifacts(&self) -> &ArtifactStore {
        &self.artifacts
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Starts a new run of `plan` and drives it to its end.
    pub async fn run(
        &self,
        plan: Arc<Plan>,
        inputs: Map<String, Value>,
        ctl: RunControl,
    ) -> Result<RunReport, EngineError> {
        let created = self.create_run(plan, inputs).await?;
        self.drive_created(created, ctl).await
    }

    /// Records a new run of `plan` (status `running`, owned by this engine) and returns it
    /// without running anything, so a caller can hand out its id first (`POST /runs`).
    /// [`Engine::drive_created`] then runs it.
    pub async fn create_run(
        &self,
        plan: Arc<Plan>,
        inputs: Map<String, Value>,
    ) -> Result<CreatedRun, EngineError> {
        let inputs = plan.bind_inputs(&inputs)?;
        self.store
            .put_workflow(&plan.hash, &plan.name, Some(&plan.file), &plan.yaml)
            .await?;
        let run_id = uuid::Uuid::now_v7().to_string();
        let now = now_ms();
        self.store
            .create_run(&RunRecord {
                id: run_id.clone(),
                workflow_hash: plan.hash.clone(),
                workflow_name: plan.name.clone(),
                status: RunStatus::Running,
                inputs: Value::Object(inputs.clone()),
                options: json!({
                    "no_cache": self.options.no_cache,
                    "file": plan.file,
                    "distributed": self.options.distributed.is_some(),
                }),
                outputs: None,
                error: None,
                created_at: now,
                finished_at: None,
                resumed_count: 0,
                owner: Some(self.options.worker.clone()),
                heartbeat_at: Some(now),
            })
            .await?;
        Ok(CreatedRun {
            run_id,
            plan,
            inputs,
        })
    }

    /// Drives a run from [`Engine::create_run`] to its end.
    pub async fn drive_created(
        &self,
        created: CreatedRun,
        ctl: RunControl,
    ) -> Result<RunReport, EngineError> {
        let CreatedRun {
            run_id,
            plan,
            inputs,
        } = created;
        let fresh = Fresh::CacheAllowed;
        self.drive(plan, run_id, inputs, Prior::default(), fresh, ctl)
            .await
    }

    /// The workflow a stored run was started with, for the caller to compile and pass to
    /// [`Engine::resume`]. The engine never parses YAML.
    pub async fn stored_workflow(&self, run_id: &str) -> Result<StoredWorkflow, EngineError> {
        let run = self.store.get_run(run_id).await?;
        let (yaml, path) = self
            .store
            .get_workflow(&run.workflow_hash)
            .await?
            .ok_or_else(|| {
                EngineError::Internal(format!(
                    "workflow {} of run {run_id} is missing",
                    run.workflow_hash
                ))
            })?;
        let file = path.unwrap_or_else(|| format!("{}.yaml", run.workflow_name));
        Ok(StoredWorkflow { run, file, yaml })
    }

    /// Finishes an interrupted (or failed, or cancelled) run with `plan`, compiled from
    /// [`Engine::stored_workflow`]: steps that succeeded are kept, everything else runs
    /// again. A run that already succeeded is returned as is.
    pub async fn resume(
        &self,
        run_id: &str,
        plan: Arc<Plan>,
        ctl: RunControl,
    ) -> Result<RunReport, EngineError> {
        self.resume_forgetting(run_id, plan, &[], ctl).await
    }

    /// Runs step `from` of a finished (or abandoned) run again, and every step that
    /// depends on it, directly or not; the other steps keep their stored results and do not
    /// run. The re-run steps do not read the step cache (they would only replay their old
    /// results); what they produce is cached as usual. `plan` comes from
    /// [`Engine::stored_workflow`], as for [`Engine::resume`].
    pub async fn rerun_from(
        &self,
        run_id: &str,
        plan: Arc<Plan>,
        from: &str,
        ctl: RunControl,
    ) -> Result<RunReport, EngineError> {
        let forget = dependants(&plan, from).ok_or_else(|| EngineError::NoSuchStep {
            run_id: run_id.to_owned(),
            step: from.to_owned(),
        })?;
        self.resume_forgetting(run_id, plan, &forget, ctl).await
    }

    /// [`Engine::resume`], after forgetting the results of the steps in `forget`.
    async fn resume_forgetting(
        &self,
        run_id: &str,
        plan: Arc<Plan>,
        forget: &[String],
        ctl: RunControl,
    ) -> Result<RunReport, EngineError> {
        let run = self.store.get_run(run_id).await?;
        if run.status == RunStatus::Succeeded && forget.is_empty() {
            return self.report(run_id).await;
        }
        if plan.hash != run.workflow_hash {
            return Err(EngineError::WrongPlan {
                run_id: run_id.to_owned(),
                stored: run.workflow_hash,
                given: plan.hash.clone(),
            });
        }
        if run.status == RunStatus::Running {
            self.ensure_abandoned(&run)?;
        }
        // One conditional UPDATE: of two processes resuming at once, one wins; the other
        // stops here. The steps are read after the claim, when no one else writes them.
        if !self.store.claim_run(&run, &self.options.worker).await? {
            return Err(EngineError::ClaimLost {
                run_id: run_id.to_owned(),
            });
        }
        if !forget.is_empty() {
            self.store
                .forget_steps(run_id, &self.options.worker, forget)
                .await?;
        }
        let mut prior_steps = HashMap::new();
        let mut prior_items = HashMap::new();
        for rec in self.store.steps(run_id).await? {
            if !rec.status.is_done_ok() {
                continue;
            }
            match rec.item_index {
                None => {
                    let result = StepResult {
                        status: rec.status,
                        outputs: rec.outputs.unwrap_or(Value::Null),
                    };
                    prior_steps.insert(rec.step_id, result);
                }
                Some(i) => {
                    let outcome = Outcome {
                        status: rec.status,
                        outputs: rec.outputs,
                        error: None,
                        attempts: rec.attempts,
                        cache_key: rec.cache_key,
                    };
                    prior_items.insert((rec.step_id, i), outcome);
                }
            }
        }
        let inputs = match run.inputs {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let prior = Prior {
            steps: prior_steps,
            items: prior_items,
        };
        let fresh = if forget.is_empty() {
            Fresh::CacheAllowed
        } else {
            Fresh::NoCacheReads
        };
        self.drive(plan, run_id.to_owned(), inputs, prior, fresh, ctl)
            .await
    }

    /// Whether no live process drives `run` any more (its owner's heartbeat is stale, or
    /// its owner was a process on this host that is gone), so it may be resumed.
    pub fn is_abandoned(&self, run: &RunRecord) -> bool {
        self.ensure_abandoned(run).is_ok()
    }

    /// Refuses to resume a run that another live process is still driving.
    fn ensure_abandoned(&self, run: &RunRecord) -> Result<(), EngineError> {
        let age_ms = now_ms() - run.heartbeat_at.unwrap_or(0);
        let owner = run.owner.clone().unwrap_or_default();
        let fresh = age_ms < self.options.stale_after.as_millis() as i64;
        if !fresh {
            return Ok(());
        }
        let (host, pid) = owner.rsplit_once(':').unwrap_or(("", ""));
        let this_host = worker_id();
        let same_host = this_host.rsplit_once(':').map(|(h, _)| h) == Some(host);
        let alive =
            same_host && std::path::Path::new(&format!("/proc/{pid}")).exists() && !pid.is_empty();
        if same_host && !alive {
            return Ok(());
        }
        Err(EngineError::RunInProgress {
            run_id: run.id.clone(),
            owner,
            age_s: age_ms / 1000,
        })
    }

    async fn drive(
        &self,
        plan: Arc<Plan>,
        run_id: String,
        inputs: Map<String, Value>,
        prior: Prior,
        fresh: Fresh,
        ctl: RunControl,
    ) -> Result<RunReport, EngineError> {
        let logs = events::LogWriter::start(self.store.clone(), run_id.clone());
        let run_cancel = ctl.cancel.child_token();
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let heartbeat = tokio::spawn(heartbeats(
            self.store.clone(),
            run_id.clone(),
            self.options.worker.clone(),
            self.options.heartbeat,
            self.options.stale_after,
            run_cancel.clone(),
            lost.clone(),
        ));
        // A distributed run queues what is ready and lets the workers' concurrency decide;
        // plugin limits are each worker's own.
        let limit = match &self.options.distributed {
            Some(d) => d.max_queued,
            None => self.options.max_parallel,
        };
        let max_parallel = plan.max_parallel.unwrap_or(limit).min(limit).max(1);
        // Tasks an earlier coordinator of this run queued and nobody finished are
        // withdrawn: this one queues what it needs again (a worker still running one finds
        // its lease refused and stops).
        if let Err(e) = self.store.cancel_run_tasks(&run_id).await {
            logs.finish().await;
            heartbeat.abort();
            return Err(e.into());
        }
        let remote = self.options.distributed.clone().map(|d| {
            remote::Remote::start(self.store.clone(), self.artifacts.clone(), logs.sender(), d)
        });
        let mut plugin_limits = HashMap::new();
        for s in plan.steps.iter().filter(|_| remote.is_none()) {
            let d = s.plugin.descriptor();
            if let Some(limit) = d.max_concurrency {
                plugin_limits
                    .entry(d.name.clone())
                    .or_insert_with(|| Arc::new(Semaphore::new(limit.max(1))));
            }
        }
        let shared = Arc::new(RunShared {
            plan: plan.clone(),
            run_id: run_id.clone(),
            inputs: inputs.clone(),
            store: self.store.clone(),
            artifacts: self.artifacts.clone() as Arc<dyn Artifacts>,
            llm: self.llm.clone(),
            collections: self.collections.clone(),
            worker: self.options.worker.clone(),
            use_cache: !self.options.no_cache,
            cache_reads: fresh == Fresh::CacheAllowed,
            grace: self.options.cancel_grace,
            events: ctl.events.clone(),
            logs: logs.sender(),
            global: Arc::new(Semaphore::new(max_parallel)),
            batched: plan
                .max_parallel
                .map(|n| Arc::new(Semaphore::new(n.max(1)))),
            plugin_limits,
            cancel: run_cancel,
            kv_quota: self.options.kv_quota,
            log_quota: self.options.log_quota,
            store_down: Default::default(),
            remote: remote.clone(),
        });
        let scheduler = Scheduler::new(shared.clone(), prior.steps, prior.items);
        let ending = scheduler.run(ctl.cancel.clone(), plan.timeout).await;
        if let Some(r) = &remote {
            r.stop();
            // Whatever is still queued (the run was cancelled or timed out) is withdrawn.
            let _ = self.store.cancel_run_tasks(&run_id).await;
        }
        drop(shared);
        heartbeat.abort();
        logs.finish().await;
        let ending = ending?;
        let mut status = ending.status;
        let mut error = ending.error;
        let steps = plan
            .steps
            .iter()
            .zip(&ending.results)
            .filter_map(|(s, r)| r.as_ref().map(|r| (s.id.as_str(), r)));
        let ctx = expression_context(&plan, &run_id, &inputs, steps);
        let outputs = match self.outputs(&plan, &ctx) {
            Ok(o) => o,
            Err(msg) => {
                if status == RunStatus::Succeeded {
                    status = RunStatus::Failed;
                    error = Some(RunError::Outputs(msg));
                }
                Value::Null
            }
        };
        let error = error.as_ref().map(RunError::to_json);
        if lost.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(EngineError::Store(StoreError::Fenced {
                run_id,
                owner: self.options.worker.clone(),
            }));
        }
        self.store
            .finish_run(
                &run_id,
                &self.options.worker,
                status,
                Some(&outputs),
                error.as_ref(),
            )
            .await?;
        self.report(&run_id).await
    }

    /// Evaluates the workflow's `outputs:`.
    fn outputs(&self, plan: &Plan, ctx: &Value) -> Result<Value, String> {
        let mut out = Map::new();
        for (name, expr) in &plan.outputs {
            let v = plan.evaluator.resolve(expr, ctx).map_err(|e| {
                format!(
                    "cannot evaluate output `{name}` (`{}`): {}",
                    e.expression, e.message
                )
            })?;
            out.insert(name.clone(), v);
        }
        Ok(Value::Object(out))
    }

    /// The run as stored: status, outputs, and each step's status, attempts and timing.
    pub async fn report(&self, run_id: &str) -> Result<RunReport, EngineError> {
        let run = self.store.get_run(run_id).await?;
        let steps = self.store.steps(run_id).await?;
        Ok(RunReport::build(run, steps))
    }
}

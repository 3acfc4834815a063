//! What every task of one run shares: the plan, the store, limits and channels.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mediaflow_plugin_api::{Artifacts, LlmProvider, Value};
use mediaflow_store::{StepStatus, Store};
use mediaflow_workflow::Plan;
use serde_json::{json, Map};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::events::{Events, LogLine};

/// Result of one step (all items together for `for_each`), as later steps see it.
#[derive(Clone, Debug)]
pub(crate) struct StepResult {
    pub status: StepStatus,
    pub outputs: Value,
}

/// One run's shared state, behind an `Arc` in the scheduler and every task.
pub(crate) struct RunShared {
    pub plan: Arc<Plan>,
    pub run_id: String,
    pub inputs: Map<String, Value>,
    pub store: Store,
    pub artifacts: Arc<dyn Artifacts>,
    pub llm: Option<Arc<dyn LlmProvider>>,
    pub collections: Arc<crate::vectors::Collections>,
    /// `host:pid` of this process, recorded with each step.
    pub worker: String,
    pub use_cache: bool,
    /// Whether steps may take their results from the cache (not when re-run from a
    /// step: they would replay their old results); what they produce is cached anyway.
    pub cache_reads: bool,
    /// How long a cancelled or timed-out step may take to stop by itself.
    pub grace: Duration,
    pub events: Events,
    pub logs: mpsc::UnboundedSender<LogLine>,
    /// Most steps (or items) running at once.
    pub global: Arc<Semaphore>,
    /// Calls of plugins that batch them ([`Descriptor::batches`]) are not held to
    /// `global` but to the workflow's own `max_parallel`, if it sets one.
    ///
    /// [`Descriptor::batches`]: mediaflow_plugin_api::Descriptor::batches
    pub batched: Option<Arc<Semaphore>>,
    /// Per-plugin limits (`max_concurrency`), by plugin name.
    pub plugin_limits: HashMap<String, Arc<Semaphore>>,
    /// Cancelled when the run is cancelled or times out.
    pub cancel: CancellationToken,
    pub kv_quota: u64,
    pub log_quota: crate::LogQuota,
    /// Set when the store failed past its retries: the run stops, and nothing more is
    /// written (each write would wait out the same outage again).
    pub store_down: std::sync::Mutex<Option<mediaflow_store::StoreError>>,
    /// In a distributed run, the queue its steps go through instead of running here.
    pub remote: Option<Arc<crate::remote::Remote>>,
}

impl RunShared {
    /// The store failed for good: remember why (the first reason) and stop the run.
    pub fn store_failed(&self, e: mediaflow_store::StoreError) {
        let mut down = self.store_down.lock().unwrap_or_else(|p| p.into_inner());
        down.get_or_insert(e);
        self.cancel.cancel();
    }

    pub fn store_is_down(&self) -> bool {
        self.store_down
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    pub fn take_store_error(&self) -> Option<mediaflow_store::StoreError> {
        self.store_down
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

/// The expression context `${{ }}` sees: `inputs`, `steps.ID.{outputs,status}` and `run`.
pub(crate) fn expression_context<'a>(
    plan: &Plan,
    run_id: &str,
    inputs: &Map<String, Value>,
    steps: impl IntoIterator<Item = (&'a str, &'a StepResult)>,
) -> Value {
    let steps: Map<String, Value> = steps
        .into_iter()
        .map(|(id, r)| {
            (
                id.to_owned(),
                json!({"outputs": r.outputs, "status": r.status.as_str()}),
            )
        })
        .collect();
    json!({
        "inputs": inputs,
        "steps": steps,
        "run": {"id": run_id, "workflow": plan.name},
    })
}

//! Distributed runs, the coordinator's side: instead of calling the plugin, an attempt
//! queues its step (or `for_each` item) in the store's work queue and waits for a `mediaflow
//! worker` to finish it. One waiter per run learns of finished tasks from PostgreSQL's
//! notifications (or by polling, on SQLite and as a fallback), puts back the tasks of
//! workers whose lease ran out, and says in the step's log when no live worker can run a
//! waiting task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mediaflow_plugin_api::{ArtifactRef, LogLevel, PluginError, Value};
use mediaflow_store::{
    now_ms, ArtifactStore, NewTask, Store, StoreError, TaskRecord, TaskState, WorkerInfo,
    DONE_CHANNEL,
};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::events::LogLine;

/// How a coordinator hands its steps to workers.
#[derive(Clone, Debug)]
pub struct DispatchOptions {
    /// The model names a worker can have (the catalog's and the user's): a step whose
    /// `model:` names one needs a worker that has it installed. A `model:` that is none of
    /// these (a path, an artifact, a plugin's own setting such as `hybrid`) needs nothing.
    pub models: Arc<std::collections::BTreeSet<String>>,
    /// How often the waiter looks at the queue without a notification (SQLite has none;
    /// on PostgreSQL this only bounds what a lost notification costs).
    pub poll: Duration,
    /// Most tasks of one run queued at once (the workers' concurrency is the real limit).
    pub max_queued: usize,
    /// Claims a task may lose to dead workers (expired leases) before it fails with
    /// `worker_lost`, on top of the attempts its `retry:` allows.
    pub lost_worker_attempts: u32,
    /// A worker not heard from for this long is not counted as live.
    pub worker_timeout: Duration,
    /// After this long in the queue, a task no live worker can run is reported in its log.
    pub report_waiting_after: Duration,
}

impl Default for DispatchOptions {
    fn default() -> Self {
        DispatchOptions {
            models: Arc::default(),
            poll: Duration::from_millis(250),
            max_queued: 1024,
            lost_worker_attempts: 3,
            worker_timeout: Duration::from_secs(15),
            report_waiting_after: Duration::from_secs(3),
        }
    }
}

/// The id of the task of `step`/`item` in `run_id`: one row for every attempt, made ready
/// again for the next one (and after a resume or a re-run).
pub fn task_id(run_id: &str, step: &str, item: Option<usize>) -> String {
    match item {
        Some(i) => format!("{run_id}/{step}/{i}"),
        None => format!("{run_id}/{step}"),
    }
}

/// What a step needs of a worker besides its plugin: the model its `model:` names, when
/// that is one of `models` (`model:whisper-base`).
pub fn needs(config: &Value, models: &std::collections::BTreeSet<String>) -> Vec<String> {
    match config.get("model").and_then(Value::as_str) {
        Some(model) if models.contains(model) => vec![format!("model:{model}")],
        _ => Vec::new(),
    }
}

/// Whether `worker` can run a task of `plugin` that needs `needs`.
pub fn can_run(worker: &WorkerInfo, plugin: &str, needs: &[String]) -> bool {
    worker.plugins.iter().any(|p| p == plugin)
        && needs.iter().all(|n| worker.capabilities.contains(n))
}

struct Pending {
    tx: oneshot::Sender<TaskRecord>,
    step: String,
    item: Option<usize>,
    plugin: String,
    needs: Vec<String>,
    since: Instant,
    reported: bool,
}

/// One run's link to the queue.
pub(crate) struct Remote {
    store: Store,
    pub artifacts: Arc<ArtifactStore>,
    pending: Mutex<HashMap<String, Pending>>,
    logs: mpsc::UnboundedSender<LogLine>,
    pub options: DispatchOptions,
    stop: CancellationToken,
}

impl Remote {
    /// Starts the run's waiter; it ends with [`Remote::stop`].
    pub fn start(
        store: Store,
        artifacts: Arc<ArtifactStore>,
        logs: mpsc::UnboundedSender<LogLine>,
        options: DispatchOptions,
    ) -> Arc<Remote> {
        let remote = Arc::new(Remote {
            store,
            artifacts,
            pending: Mutex::default(),
            logs,
            options,
            stop: CancellationToken::new(),
        });
        tokio::spawn(remote.clone().wait());
        remote
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `task` and returns where its finished record will arrive. The task is in
    /// the queue (new, or an earlier attempt's row made ready again) before it is waited
    /// for, so the waiter never hands back an earlier attempt's result; a result that
    /// comes in between is found on the waiter's next round.
    pub async fn submit(&self, task: NewTask) -> Result<oneshot::Receiver<TaskRecord>, StoreError> {
        if !self.store.enqueue_task(&task).await? {
            // A retry, or a task left from before a resume or a re-run: it runs again.
            self.store.requeue_task(&task.id, &task.payload).await?;
        }
        let (tx, rx) = oneshot::channel();
        self.pending().insert(
            task.id.clone(),
            Pending {
                tx,
                step: task.step_id,
                item: task.item,
                plugin: task.plugin,
                needs: task.needs,
                since: Instant::now(),
                reported: false,
            },
        );
        Ok(rx)
    }

    /// Gives up waiting for task `id` (the run was cancelled): cancels it in the queue.
    pub async fn withdraw(&self, id: &str) {
        self.pending().remove(id);
        let _ = self.store.cancel_task(id).await;
    }

    async fn wait(self: Arc<Self>) {
        let mut listener = self.store.listen(DONE_CHANNEL).await;
        let mut last_report = Instant::now();
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = listener.wait(self.options.poll) => {}
            }
            let ids: Vec<String> = self.pending().keys().cloned().collect();
            if ids.is_empty() {
                continue;
            }
            // A transient failure is tried again on the next round.
            if let Ok(done) = self.store.finished_tasks(&ids).await {
                let mut pending = self.pending();
                for t in done {
                    if let Some(p) = pending.remove(&t.id) {
                        let _ = p.tx.send(t);
                    }
                }
            }
            let _ = self.store.requeue_expired(now_ms()).await;
            if last_report.elapsed() >= Duration::from_secs(1) {
                last_report = Instant::now();
                self.report_waiting().await;
            }
        }
    }

    /// Logs, once per task, that no live worker can run a task that has waited a while.
    async fn report_waiting(&self) {
        let due: Vec<(String, String, Vec<String>)> = self
            .pending()
            .iter()
            .filter(|(_, p)| !p.reported && p.since.elapsed() >= self.options.report_waiting_after)
            .map(|(id, p)| (id.clone(), p.plugin.clone(), p.needs.clone()))
            .collect();
        if due.is_empty() {
            return;
        }
        let since = now_ms() - i64::try_from(self.options.worker_timeout.as_millis()).unwrap_or(0);
        let Ok(workers) = self.store.live_workers(since).await else {
            return;
        };
        let mut pending = self.pending();
        for (id, plugin, needs) in due {
            if workers.iter().any(|w| can_run(w, &plugin, &needs)) {
                continue;
            }
            let Some(p) = pending.get_mut(&id) else {
                continue;
            };
            p.reported = true;
            let wanted = std::iter::once(plugin.as_str())
                .chain(needs.iter().map(|n| {
                    n.strip_prefix("model:")
                        .or_else(|| n.strip_prefix("tag:"))
                        .unwrap_or(n)
                }))
                .collect::<Vec<_>>()
                .join(" + ");
            let _ = self.logs.send(LogLine {
                step: p.step.clone(),
                item: p.item,
                level: LogLevel::Warn,
                message: format!(
                    "waiting for a worker with {wanted}: none of the {} live workers has it \
                     (start one with `mediaflow worker`; `mediaflow workers` lists them)",
                    workers.len()
                ),
            });
        }
    }
}

/// The payload a worker gets: the resolved settings and how to run them.
pub(crate) fn payload(
    config: &Value,
    attempt: u32,
    timeout: Option<Duration>,
    permissions: &[mediaflow_plugin_api::Permission],
    file: &str,
    line: usize,
) -> Value {
    json!({
        "config": config,
        "attempt": attempt,
        "timeout_ms": timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        "permissions": permissions,
        "workflow": file,
        "line": line,
    })
}

/// What a finished task says: its outputs, or why it did not succeed (`None`: cancelled).
pub(crate) fn outcome(task: &TaskRecord) -> Result<Value, Option<PluginError>> {
    let result = task.result.clone().unwrap_or(Value::Null);
    match task.state {
        TaskState::Succeeded => Ok(result.get("outputs").cloned().unwrap_or(json!({}))),
        TaskState::Cancelled => Err(None),
        _ => {
            let error = result.get("error").cloned().unwrap_or(result);
            Err(Some(serde_json::from_value(error.clone()).unwrap_or_else(
                |_| PluginError::new("worker", format!("the worker reported {error}")),
            )))
        }
    }
}

/// Publishes the artifacts `value` refers to, for workers on other machines.
pub(crate) async fn publish_all(
    artifacts: &ArtifactStore,
    value: &Value,
) -> Result<(), PluginError> {
    for a in ArtifactRef::find_all(value) {
        artifacts.publish(&a).await.map_err(|e| {
            PluginError::new(
                "artifact_store",
                format!("cannot publish artifact {} for the workers: {e}", a.sha256),
            )
            .retryable()
        })?;
    }
    Ok(())
}

/// Fetches the artifacts `value` refers to into `artifacts` (those it lacks).
pub(crate) async fn fetch_all(artifacts: &ArtifactStore, value: &Value) -> Result<(), PluginError> {
    for a in ArtifactRef::find_all(value) {
        artifacts.fetch(&a).await.map_err(|e| {
            PluginError::new(
                "artifact_store",
                format!("cannot fetch artifact {} from the database: {e}", a.sha256),
            )
            .retryable()
        })?;
    }
    Ok(())
}

//! `mediaflow worker`: claims the queued steps of distributed runs that it can run, holds
//! each claim's lease by renewing it, runs the plugin, and stores the result under the
//! claim's generation (a result from a claim that is no longer current is refused).
//!
//! It wakes on `NOTIFY mediaflow_queue` (PostgreSQL), looking at the queue at least once a
//! second anyway; announces itself and what it can run every few seconds; puts back the
//! tasks of workers whose lease ran out; and keeps the artifacts it fetched in its own
//! artifact store, by sha256, so it fetches each one once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mediaflow_plugin_api::{LlmProvider, Permission, Plugin, PluginError, Value};
use mediaflow_store::{
    now_ms, ArtifactStore, Store, StoreError, TaskRecord, TaskState, WorkerInfo, QUEUE_CHANNEL,
};
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::call::{call_plugin, context, Call, Called, Host};
use crate::events::{sink, LogWriter};
use crate::remote::{fetch_all, publish_all};
use crate::LogQuota;

/// How a worker works.
#[derive(Clone)]
pub struct WorkerOptions {
    /// Names it in the queue and in step records (`host:pid`).
    pub id: String,
    /// Most tasks at once.
    pub concurrency: usize,
    /// `--tags`: advertised as `tag:NAME`.
    pub tags: Vec<String>,
    /// The catalog models it has: advertised as `model:NAME`.
    pub models: Vec<String>,
    /// Lists the models again at every heartbeat (a model pulled while the worker runs is
    /// offered from then on); `None` from it keeps the last list.
    pub list_models: Option<Arc<dyn Fn() -> Option<Vec<String>> + Send + Sync>>,
    /// How long a claim holds without a renewal; renewed every third of it.
    pub lease: Duration,
    /// How long a cancelled step may take to stop by itself.
    pub grace: Duration,
    pub kv_quota: u64,
    pub log_quota: LogQuota,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            id: crate::worker_id(),
            concurrency: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            tags: Vec::new(),
            models: Vec::new(),
            list_models: None,
            lease: Duration::from_secs(30),
            grace: Duration::from_secs(5),
            kv_quota: crate::kv::kv_quota(),
            log_quota: LogQuota::from_env(),
        }
    }
}

/// What a worker did, as it happens.
#[derive(Clone, Debug)]
pub enum WorkerEvent {
    Claimed(TaskRecord),
    Finished {
        task: TaskRecord,
        state: TaskState,
    },
    /// The claim was no longer current when the result came: another worker has the task.
    Refused(TaskRecord),
    Trouble(String),
}

/// A worker process's engine.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    artifacts: Arc<ArtifactStore>,
    plugins: HashMap<String, Arc<dyn Plugin>>,
    llm: Option<Arc<dyn LlmProvider>>,
    collections: Arc<crate::vectors::Collections>,
    options: WorkerOptions,
    /// What it advertises as `model:NAME` now.
    models: std::sync::Mutex<Vec<String>>,
    started_at: i64,
    running: AtomicU32,
    events: Option<mpsc::UnboundedSender<WorkerEvent>>,
    /// Plugins' own `max_concurrency`, held per worker.
    limits: HashMap<String, Arc<Semaphore>>,
    /// Rung when a task ends: a slot (or a plugin's limit) may have come free.
    freed: tokio::sync::Notify,
}

impl Worker {
    pub fn new(
        store: Store,
        artifacts: ArtifactStore,
        plugins: impl IntoIterator<Item = Arc<dyn Plugin>>,
        options: WorkerOptions,
        llm: Option<Arc<dyn LlmProvider>>,
        events: Option<mpsc::UnboundedSender<WorkerEvent>>,
    ) -> Worker {
        let plugins: HashMap<String, Arc<dyn Plugin>> = plugins
            .into_iter()
            .map(|p| (p.descriptor().name.clone(), p))
            .collect();
        let limits = plugins
            .iter()
            .filter_map(|(name, p)| {
                let n = p.descriptor().max_concurrency?;
                Some((name.clone(), Arc::new(Semaphore::new(n.max(1)))))
            })
            .collect();
        Worker {
            inner: Arc::new(Inner {
                store,
                artifacts: Arc::new(artifacts),
                plugins,
                llm,
                collections: Arc::default(),
                models: std::sync::Mutex::new(options.models.clone()),
                started_at: now_ms(),
                options,
                running: AtomicU32::new(0),
                events,
                limits,
                freed: tokio::sync::Notify::new(),
            }),
        }
    }

    /// The worker as the queue sees it.
    pub fn info(&self) -> WorkerInfo {
        let o = &self.inner.options;
        let mut plugins: Vec<String> = self.inner.plugins.keys().cloned().collect();
        plugins.sort();
        let models = self
            .inner
            .models
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let capabilities = models
            .iter()
            .map(|m| format!("model:{m}"))
            .chain(o.tags.iter().map(|t| format!("tag:{t}")))
            .collect();
        let host = o.id.rsplit_once(':').map_or(o.id.as_str(), |(h, _)| h);
        WorkerInfo {
            id: o.id.clone(),
            host: host.to_owned(),
            plugins,
            capabilities,
            concurrency: u32::try_from(o.concurrency).unwrap_or(u32::MAX),
            running: self.inner.running.load(Ordering::Relaxed),
            started_at: self.inner.started_at,
            heartbeat_at: now_ms(),
        }
    }

    /// Works until `stop` is cancelled, then finishes the tasks it holds and leaves the
    /// list of live workers. Fails only when the database cannot be reached at start.
    pub async fn run(&self, stop: CancellationToken) -> Result<(), StoreError> {
        let inner = &self.inner;
        let info = self.info();
        inner.store.worker_heartbeat(&info).await?;
        let beat = tokio::spawn(self.clone().heartbeats(stop.clone()));
        let slots = Arc::new(Semaphore::new(inner.options.concurrency.max(1)));
        let mut listener = inner.store.listen(QUEUE_CHANNEL).await;
        let mut tasks = JoinSet::new();
        loop {
            while tasks.try_join_next().is_some() {}
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                _ = stop.cancelled() => break,
            };
            // Only the plugins below their own limit are offered.
            let mut offer = self.info();
            offer.plugins.retain(|p| {
                inner
                    .limits
                    .get(p)
                    .is_none_or(|s| s.available_permits() > 0)
            });
            match inner.store.claim_task(&offer, inner.options.lease).await {
                Ok(Some(task)) => {
                    inner.running.fetch_add(1, Ordering::Relaxed);
                    self.emit(WorkerEvent::Claimed(task.clone()));
                    // Claims are made one at a time here, so the permit is free.
                    let limit = inner
                        .limits
                        .get(&task.plugin)
                        .and_then(|s| s.clone().try_acquire_owned().ok());
                    let me = self.clone();
                    tasks.spawn(async move {
                        me.execute(task).await;
                        me.inner.running.fetch_sub(1, Ordering::Relaxed);
                        drop((permit, limit));
                        me.inner.freed.notify_one();
                    });
                }
                Ok(None) => {
                    drop(permit);
                    tokio::select! {
                        _ = listener.wait(Duration::from_secs(1)) => {}
                        _ = inner.freed.notified() => {}
                        _ = stop.cancelled() => break,
                    }
                }
                Err(e) => {
                    drop(permit);
                    self.emit(WorkerEvent::Trouble(format!("cannot claim work: {e}")));
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.cancelled() => break,
                    }
                }
            }
        }
        while tasks.join_next().await.is_some() {}
        beat.abort();
        let _ = inner.store.remove_worker(&info.id).await;
        Ok(())
    }

    fn emit(&self, e: WorkerEvent) {
        if let Some(tx) = &self.inner.events {
            let _ = tx.send(e);
        }
    }

    /// Says every few seconds that this worker is alive and what it runs, and puts back
    /// the tasks of workers whose lease ran out.
    async fn heartbeats(self, stop: CancellationToken) {
        let every = (self.inner.options.lease / 3)
            .clamp(Duration::from_millis(100), Duration::from_secs(5));
        let mut stopping = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                // Once at the stop (so the count of running tasks is fresh), then on the
                // clock again while the held tasks finish.
                _ = stop.cancelled(), if !stopping => stopping = true,
            }
            if let Some(list) = &self.inner.options.list_models {
                if let Some(models) = list() {
                    *self.inner.models.lock().unwrap_or_else(|p| p.into_inner()) = models;
                }
            }
            let info = self.info();
            if let Err(e) = self.inner.store.worker_heartbeat(&info).await {
                self.emit(WorkerEvent::Trouble(format!(
                    "cannot send a heartbeat: {e}"
                )));
            }
            if let Err(e) = self.inner.store.requeue_expired(now_ms()).await {
                self.emit(WorkerEvent::Trouble(format!(
                    "cannot requeue lost work: {e}"
                )));
            }
        }
    }

    /// Runs one claimed task and stores its result under the claim's generation.
    async fn execute(&self, task: TaskRecord) {
        let inner = &self.inner;
        let lost = CancellationToken::new();
        let renew = tokio::spawn(renewals(
            inner.store.clone(),
            task.id.clone(),
            task.generation,
            inner.options.lease,
            lost.clone(),
        ));
        let result = self.call(&task, &lost).await;
        renew.abort();
        let (state, result) = match result {
            Ok(outputs) => match publish_all(&inner.artifacts, &outputs).await {
                Ok(()) => (TaskState::Succeeded, json!({ "outputs": outputs })),
                Err(e) => (TaskState::Failed, json!({ "error": e })),
            },
            Err(Some(e)) => (TaskState::Failed, json!({ "error": e })),
            Err(None) => (
                TaskState::Cancelled,
                json!({ "error": PluginError::cancelled() }),
            ),
        };
        let stored = inner
            .store
            .complete_task(&task.id, task.generation, state, &result)
            .await;
        match stored {
            Ok(true) => self.emit(WorkerEvent::Finished { task, state }),
            Ok(false) => self.emit(WorkerEvent::Refused(task)),
            Err(e) => self.emit(WorkerEvent::Trouble(format!(
                "cannot store the result of {}: {e} (its lease will run out and it runs again)",
                task.id
            ))),
        }
    }

    async fn call(
        &self,
        task: &TaskRecord,
        lost: &CancellationToken,
    ) -> Result<Value, Option<PluginError>> {
        let inner = &self.inner;
        let Some(plugin) = inner.plugins.get(&task.plugin).cloned() else {
            return Err(Some(PluginError::new(
                "no_plugin",
                format!(
                    "worker {} has no plugin `{}`",
                    inner.options.id, task.plugin
                ),
            )));
        };
        let p = &task.payload;
        let config = p.get("config").cloned().unwrap_or(json!({}));
        let attempt = p
            .get("attempt")
            .and_then(Value::as_u64)
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(1);
        let timeout = p
            .get("timeout_ms")
            .and_then(Value::as_u64)
            .map(Duration::from_millis);
        let permissions: Vec<Permission> = p
            .get("permissions")
            .cloned()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        fetch_all(&inner.artifacts, &config).await.map_err(Some)?;
        let logs = LogWriter::start(inner.store.clone(), task.run_id.clone());
        let token = lost.child_token();
        let cx = context(
            Host {
                store: &inner.store,
                artifacts: inner.artifacts.clone(),
                llm: inner.llm.clone(),
                collections: inner.collections.clone(),
                kv_quota: inner.options.kv_quota,
            },
            Call {
                run_id: &task.run_id,
                step_id: &task.step_id,
                item: task.item,
                attempt,
                permissions: permissions.into(),
            },
            plugin.as_ref(),
            token.clone(),
            sink(
                &task.step_id,
                task.item,
                &None,
                &logs.sender(),
                inner.options.log_quota,
            ),
        );
        let called = call_plugin(
            plugin,
            config,
            cx,
            token,
            timeout,
            inner.options.grace,
            lost,
        )
        .await;
        logs.finish().await;
        if let Called::Cancelled = called {
            return Err(None);
        }
        called.into_result()
    }
}

/// Renews the lease of claim `generation` of task `id` every third of `lease`; when the
/// claim is no longer current (the task was put back or cancelled), cancels `lost`.
async fn renewals(
    store: Store,
    id: String,
    generation: i64,
    lease: Duration,
    lost: CancellationToken,
) {
    let every = (lease / 3).max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(every).await;
        match store.renew_task(&id, generation, lease).await {
            Ok(true) => {}
            Ok(false) => {
                lost.cancel();
                return;
            }
            // The database is away: keep trying; if it stays away past the lease, the
            // task runs again elsewhere and this result will be refused.
            Err(_) => {}
        }
    }
}

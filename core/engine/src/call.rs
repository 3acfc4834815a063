//! One call of a plugin, wherever it runs (the engine's own process, or a `mediaflow
//! worker`): the context a plugin sees, and the call on its own task under a timeout and a
//! cancel, with a grace period to stop by itself.

use std::sync::Arc;
use std::time::Duration;

use mediaflow_plugin_api::{
    format_duration, Artifacts, EventSink, LlmProvider, Permission, Plugin, PluginError,
    RunContext, Value,
};
use mediaflow_store::Store;
use tokio_util::sync::CancellationToken;

/// A deadline that never comes (a century: `Instant` cannot add `Duration::MAX`).
pub(crate) const FOREVER: Duration = Duration::from_secs(100 * 365 * 86400);

/// What the host offers a step besides its settings.
pub(crate) struct Host<'a> {
    pub store: &'a Store,
    pub artifacts: Arc<dyn Artifacts>,
    pub llm: Option<Arc<dyn LlmProvider>>,
    pub collections: Arc<crate::vectors::Collections>,
    pub kv_quota: u64,
}

/// Which call of which step.
pub(crate) struct Call<'a> {
    pub run_id: &'a str,
    pub step_id: &'a str,
    pub item: Option<usize>,
    pub attempt: u32,
    pub permissions: Arc<[Permission]>,
}

/// The context `plugin` runs in: cancellation by `token`, logs to `sink`, the run's
/// artifacts, its key-value namespace, text generation, vectors and the store.
pub(crate) fn context(
    host: Host<'_>,
    call: Call<'_>,
    plugin: &dyn Plugin,
    token: CancellationToken,
    sink: Arc<dyn EventSink>,
) -> RunContext {
    RunContext::new(
        call.run_id.to_owned(),
        call.step_id.to_owned(),
        call.item,
        call.attempt,
        token,
        sink,
        host.artifacts,
    )
    .with_permissions(call.permissions)
    .with_kv(Arc::new(crate::kv::StoreKv {
        store: host.store.clone(),
        namespace: plugin.descriptor().identity(),
        quota: host.kv_quota,
    }))
    .with_llm(host.llm)
    .with_vectors(Some(Arc::new(crate::vectors::StoreVectors {
        store: host.store.clone(),
        collections: host.collections,
        run_id: call.run_id.to_owned(),
        step_id: call.step_id.to_owned(),
    })))
    .with_extension(Arc::new(host.store.clone()))
}

/// How a call ended.
pub(crate) enum Called {
    /// The plugin's outputs (an object), or its error (a panic included).
    Done(Result<Value, PluginError>),
    /// It ran past `timeout` (and was told to stop).
    TimedOut(Duration),
    Cancelled,
}

impl Called {
    /// As a step error where it is one.
    pub fn into_result(self) -> Result<Value, Option<PluginError>> {
        match self {
            Called::Done(r) => r.map_err(Some),
            Called::TimedOut(after) => Err(Some(
                PluginError::new(
                    "timeout",
                    format!("timed out after {}", format_duration(after)),
                )
                .retryable()
                .with_help("raise `timeout:` on the step if it needs longer"),
            )),
            Called::Cancelled => Err(None),
        }
    }
}

/// Runs `plugin` on its own task, so a panic inside it becomes an error instead of taking
/// the process down. A timeout and a cancel (`cancel`) take the same path: `token` (the
/// context's) is cancelled and the plugin gets `grace` to stop before its task is dropped;
/// a result that arrives within the grace period after a cancel is kept.
pub(crate) async fn call_plugin(
    plugin: Arc<dyn Plugin>,
    config: Value,
    cx: RunContext,
    token: CancellationToken,
    timeout: Option<Duration>,
    grace: Duration,
    cancel: &CancellationToken,
) -> Called {
    let name = plugin.descriptor().name.clone();
    let mut handle = tokio::spawn(async move { plugin.run(config, &cx).await });
    let deadline = tokio::time::sleep(timeout.unwrap_or(FOREVER).min(FOREVER));
    tokio::pin!(deadline);
    let timed_out = tokio::select! {
        r = &mut handle => return joined(&name, r, cancel),
        _ = &mut deadline => true,
        _ = cancel.cancelled() => false,
    };
    token.cancel();
    let settled = tokio::time::timeout(grace, &mut handle).await;
    if settled.is_err() {
        handle.abort();
    }
    if timed_out {
        return Called::TimedOut(timeout.unwrap_or_default());
    }
    match settled {
        Ok(r @ Ok(Ok(_))) => joined(&name, r, cancel),
        _ => Called::Cancelled,
    }
}

fn joined(
    name: &str,
    joined: Result<Result<Value, PluginError>, tokio::task::JoinError>,
    cancel: &CancellationToken,
) -> Called {
    match joined {
        Ok(Ok(outputs)) if outputs.is_object() => Called::Done(Ok(outputs)),
        Ok(Ok(other)) => Called::Done(Err(PluginError::new(
            "bad_outputs",
            format!("plugin `{name}` returned {other}, not an object of outputs"),
        ))),
        Ok(Err(e)) if e.code == "cancelled" && cancel.is_cancelled() => Called::Cancelled,
        Ok(Err(e)) => Called::Done(Err(e)),
        Err(join) if join.is_panic() => {
            Called::Done(Err(PluginError::from_panic(join.into_panic().as_ref())))
        }
        Err(_) => Called::Cancelled,
    }
}

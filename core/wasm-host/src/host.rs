//! The per-call store state and the `mediaflow:plugin` imports.

use std::collections::HashSet;
use std::future::Future;
use std::time::{Duration, Instant};

use mediaflow_plugin_api::{
    ArtifactRef, CancellationToken, KeyValue, LogLevel, Permission, PluginError as ApiError,
    RunContext, Value,
};
use wasmtime::component::ResourceTable;
use wasmtime::StoreLimits;
use wasmtime_wasi::{HostWallClock, WasiCtx, WasiCtxView, WasiView};

use crate::bindings::mediaflow::plugin::{artifacts, kv, llm, log, types};
use crate::bindings::PluginError;

/// What a `run` call may reach beyond its own memory.
pub(crate) struct CallContext {
    pub cx: RunContext,
    pub plugin: String,
    /// sha256 of the artifacts that appear in the step's `with:` map.
    pub readable: HashSet<String>,
    pub deadline: Instant,
    pub stop: CancellationToken,
    /// Bytes this call may still store with `artifacts.write`.
    pub artifact_budget: std::sync::atomic::AtomicU64,
}

pub(crate) struct HostState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limits: StoreLimits,
    /// `None` for `describe` and `validate`, which get nothing but `log`.
    pub call: Option<CallContext>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The wall clock of a plugin that was not granted `clock`: always the Unix epoch.
pub(crate) struct EpochClock;

impl HostWallClock for EpochClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

fn error(code: &str, message: impl Into<String>, help: Option<&str>) -> PluginError {
    PluginError {
        code: code.to_owned(),
        message: message.into(),
        help: help.map(str::to_owned),
        retryable: false,
    }
}

pub(crate) fn to_api(e: PluginError) -> ApiError {
    ApiError {
        code: e.code,
        message: e.message,
        help: e.help,
        retryable: e.retryable,
    }
}

pub(crate) fn from_api(e: ApiError) -> PluginError {
    PluginError {
        code: e.code,
        message: e.message,
        help: e.help,
        retryable: e.retryable,
    }
}

impl HostState {
    /// The call context, if the step granted `permission`.
    fn granted(&self, permission: Permission) -> Result<&CallContext, PluginError> {
        let Some(call) = &self.call else {
            return Err(error(
                "permission_denied",
                format!("`{permission}` is not available while describing or validating"),
                None,
            ));
        };
        if call.cx.is_granted(permission) {
            Ok(call)
        } else {
            Err(error(
                "permission_denied",
                format!(
                    "step `{}` did not grant `{permission}` to plugin `{}`",
                    call.cx.step_id, call.plugin
                ),
                Some(&format!("add `permissions: [{permission}]` to the step")),
            ))
        }
    }
}

impl CallContext {
    /// Host async work for the guest. The call's deadline and cancellation need no check
    /// here: the whole call is dropped then (see `plugin::within`).
    async fn host_call<T>(
        &self,
        fut: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, PluginError> {
        fut.await.map_err(from_api)
    }

    fn kv(&self) -> Result<&dyn KeyValue, PluginError> {
        self.cx.kv().ok_or_else(|| {
            error(
                "unavailable",
                "this host has no key-value store for plugins",
                None,
            )
        })
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    async fn log(&mut self, level: log::Level, message: String) {
        if let Some(call) = &self.call {
            let level = match level {
                log::Level::Debug => LogLevel::Debug,
                log::Level::Info => LogLevel::Info,
                log::Level::Warn => LogLevel::Warn,
                log::Level::Error => LogLevel::Error,
            };
            call.cx.log(level, &message);
        }
    }

    async fn progress(&mut self, fraction: f32, message: Option<String>) {
        if let Some(call) = &self.call {
            let fraction = if fraction.is_finite() { fraction } else { 0.0 };
            call.cx.progress(fraction, message.as_deref());
        }
    }
}

impl llm::Host for HostState {
    async fn generate(&mut self, request: String) -> Result<String, PluginError> {
        let call = self.granted(Permission::Llm)?;
        let Some(llm) = call.cx.llm().cloned() else {
            return Err(error(
                "unavailable",
                "no `llm.generate` plugin is installed",
                Some("build `mediaflow-llm` (cargo build --release -p mediaflow-llm) and put it beside `mediaflow`"),
            ));
        };
        let request: Value = serde_json::from_str(&request).map_err(|e| {
            error(
                "bad_input",
                format!("the llm request is not JSON: {e}"),
                None,
            )
        })?;
        let cx = call.cx.clone().with_cancel(call.stop.clone());
        let out = call
            .host_call(async move { llm.generate(request, &cx).await })
            .await?;
        Ok(out.to_string())
    }
}

impl artifacts::Host for HostState {
    async fn read(&mut self, reference: String) -> Result<Vec<u8>, PluginError> {
        let call = self.granted(Permission::Artifacts)?;
        let artifact = serde_json::from_str::<Value>(&reference)
            .ok()
            .and_then(|v| ArtifactRef::from_value(&v))
            .ok_or_else(|| error("bad_input", "not an artifact reference", None))?;
        if !call.readable.contains(&artifact.sha256) {
            return Err(error(
                "permission_denied",
                format!(
                    "artifact {} is not one of step `{}`'s inputs",
                    artifact.sha256, call.cx.step_id
                ),
                Some("pass the file to the step in `with:`"),
            ));
        }
        let cx = call.cx.clone();
        call.host_call(async move {
            let path = cx.artifact_path(&artifact).await?;
            tokio::fs::read(&path)
                .await
                .map_err(|e| ApiError::new("io", format!("{}: {e}", path.display())))
        })
        .await
    }

    async fn write(
        &mut self,
        name: String,
        media_type: String,
        data: Vec<u8>,
    ) -> Result<String, PluginError> {
        let call = self.granted(Permission::Artifacts)?;
        let size = data.len() as u64;
        let budget = &call.artifact_budget;
        let left = budget.load(std::sync::atomic::Ordering::Relaxed);
        if size > left {
            return Err(error(
                "artifact_quota",
                format!(
                    "writing {size} more bytes would go over this call's artifact quota ({left} bytes left)"
                ),
                Some("write fewer or smaller artifacts, or raise MEDIAFLOW_WASM_ARTIFACT_MB"),
            ));
        }
        budget.store(left - size, std::sync::atomic::Ordering::Relaxed);
        let cx = call.cx.clone();
        let stored = call
            .host_call(async move {
                cx.artifacts()
                    .put_bytes(&data, &media_type, Some(&name))
                    .await
            })
            .await?;
        Ok(stored.to_value().to_string())
    }
}

impl kv::Host for HostState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, PluginError> {
        let call = self.granted(Permission::Kv)?;
        let kv = call.kv()?;
        call.host_call(kv.get(&key)).await
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), PluginError> {
        let call = self.granted(Permission::Kv)?;
        let kv = call.kv()?;
        call.host_call(kv.set(&key, &value)).await
    }

    async fn delete(&mut self, key: String) -> Result<bool, PluginError> {
        let call = self.granted(Permission::Kv)?;
        let kv = call.kv()?;
        call.host_call(kv.delete(&key)).await
    }

    async fn keys(&mut self, prefix: String) -> Result<Vec<String>, PluginError> {
        let call = self.granted(Permission::Kv)?;
        let kv = call.kv()?;
        call.host_call(kv.keys(&prefix)).await
    }
}

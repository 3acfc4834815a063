//! A loaded component behind the [`Plugin`] trait.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mediaflow_plugin_api::{
    ArtifactRef, CancellationToken, ConfigIssue, Descriptor, LogLevel, Map, Permission, Plugin,
    PluginError, Port, RunContext, Value, ValueType,
};
use wasmtime::component::Component;
use wasmtime::{Store, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::WasiCtxBuilder;

use crate::bindings::{self, PluginPre};
use crate::host::{CallContext, EpochClock, HostState};
use crate::runtime::Shared;
use crate::trap::{classify, Interrupted};
use crate::WasmError;

/// The `mediaflow:plugin` interfaces that need a grant, and the grant each needs.
const GATED: &[(&str, Permission)] = &[
    ("llm", Permission::Llm),
    ("artifacts", Permission::Artifacts),
    ("kv", Permission::Kv),
];
/// The major version of `mediaflow:plugin` this host speaks.
const WIT_MAJOR: &str = "1";
/// Bytes of a call's stdout and stderr that are kept (for logs and panic messages).
const PIPE_CAPACITY: usize = 64 * 1024;
/// `describe` and `validate` are pure and quick; they get this much time.
const QUICK_CALL: Duration = Duration::from_secs(5);

/// A WebAssembly component plugin. Each call gets a fresh `Store` from a cached
/// `InstancePre`.
pub struct WasmPlugin {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    shared: Arc<Shared>,
    pre: PluginPre<HostState>,
    descriptor: Descriptor,
    path: String,
    sha256: String,
}

impl WasmPlugin {
    pub(crate) fn new(
        shared: Arc<Shared>,
        component: &Component,
        path: &str,
        sha256: String,
    ) -> Result<Self, WasmError> {
        Ok(WasmPlugin {
            inner: Arc::new(Inner::new(shared, component, path, sha256)?),
        })
    }

    /// The component file this plugin was loaded from.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    pub fn sha256(&self) -> &str {
        &self.inner.sha256
    }
}

impl Inner {
    fn new(
        shared: Arc<Shared>,
        component: &Component,
        path: &str,
        sha256: String,
    ) -> Result<Self, WasmError> {
        let incompatible = |message: String| WasmError::Incompatible {
            path: path.to_owned(),
            message,
        };
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&shared.engine)
            .map(|(n, _)| n.to_owned())
            .collect();
        for needed in ["describe", "validate", "run"] {
            if !exports.iter().any(|e| e == needed) {
                return Err(incompatible(format!(
                    "not a mediaflow plugin: it does not export `{needed}` (build it with mediaflow-sdk)"
                )));
            }
        }
        // Every component can read the wall clock through WASI; it shows 1970 unless the
        // step grants `clock`.
        let mut permissions = vec![Permission::Clock];
        for (name, _) in ty.imports(&shared.engine) {
            if let Some(rest) = name.strip_prefix("mediaflow:plugin/") {
                let (iface, version) = rest.split_once('@').unwrap_or((rest, ""));
                if version.split('.').next() != Some(WIT_MAJOR) {
                    return Err(incompatible(format!(
                        "built against mediaflow:plugin@{version}, but this mediaflow speaks {WIT_MAJOR}.x; rebuild it with a matching mediaflow-sdk"
                    )));
                }
                if let Some((_, p)) = GATED.iter().find(|(name, _)| *name == iface) {
                    permissions.push(*p);
                }
            } else if !name.starts_with("wasi:") {
                return Err(incompatible(format!(
                    "imports `{name}`, which mediaflow does not provide"
                )));
            }
        }
        let instance_pre = shared
            .linker
            .instantiate_pre(component)
            .map_err(|e| incompatible(format!("{e:#}")))?;
        let pre = PluginPre::new(instance_pre).map_err(|e| incompatible(format!("{e:#}")))?;
        let mut plugin = Inner {
            shared,
            pre,
            descriptor: Descriptor::new("", "", ""),
            path: path.to_owned(),
            sha256,
        };
        let describe_error = |message: String| WasmError::Describe {
            path: path.to_owned(),
            message,
        };
        let described = match plugin.quick(Quick::Describe) {
            Ok(Answer::Described(d)) => d,
            Ok(Answer::Validated(_)) => return Err(describe_error("no descriptor".to_owned())),
            Err(e) => return Err(describe_error(e.message)),
        };
        let mut descriptor = convert_descriptor(described).map_err(describe_error)?;
        permissions.sort();
        descriptor.permissions = permissions;
        // Its identity is its code: the name and version it declares are only claims.
        descriptor.digest = Some(plugin.sha256.clone());
        plugin.descriptor = descriptor;
        Ok(plugin)
    }

    /// A store for one call: fresh WASI context with nothing granted but stdio capture
    /// (and the wall clock if `clock`), memory limit, fuel, and the epoch deadline.
    fn store(
        &self,
        call: Option<CallContext>,
        clock: bool,
        deadline: Instant,
        stop: CancellationToken,
    ) -> (Store<HostState>, MemoryOutputPipe, MemoryOutputPipe) {
        let stdout = MemoryOutputPipe::new(PIPE_CAPACITY);
        let stderr = MemoryOutputPipe::new(PIPE_CAPACITY);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(stdout.clone()).stderr(stderr.clone());
        if !clock {
            wasi.wall_clock(EpochClock);
        }
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.shared.config.max_memory)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(
            &self.shared.engine,
            HostState {
                wasi: wasi.build(),
                table: Default::default(),
                limits,
                call,
            },
        );
        store.limiter(|s| &mut s.limits);
        if let Some(fuel) = self.shared.config.fuel {
            // Fails only when fuel is not enabled, and it is whenever `fuel` is set.
            let _ = store.set_fuel(fuel);
        }
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if stop.is_cancelled() {
                Err(Interrupted::Cancelled.into())
            } else if Instant::now() >= deadline {
                Err(Interrupted::Deadline.into())
            } else {
                Ok(UpdateDeadline::Continue(1))
            }
        });
        (store, stdout, stderr)
    }

    /// A `describe` or `validate` call from synchronous code: no grants, a short deadline.
    /// It runs to its end on a thread of its own, so it works inside or outside tokio.
    fn quick(&self, what: Quick) -> Result<Answer, PluginError> {
        let deadline = Instant::now() + QUICK_CALL;
        let stop = CancellationToken::new();
        let call = async {
            let (mut store, _out, err) = self.store(None, false, deadline, stop.clone());
            let result = async {
                let instance = self.pre.instantiate_async(&mut store).await?;
                Ok(match &what {
                    Quick::Describe => Answer::Described(instance.call_describe(&mut store).await?),
                    Quick::Validate(config) => {
                        Answer::Validated(instance.call_validate(&mut store, config).await?)
                    }
                })
            };
            let result = within(deadline, &stop, result).await;
            result.map_err(|e| {
                classify(
                    e,
                    &String::from_utf8_lossy(&err.contents()),
                    QUICK_CALL,
                    &self.shared.config,
                )
            })
        };
        let runtime = quick_runtime()?;
        std::thread::scope(|s| {
            s.spawn(|| runtime.block_on(call))
                .join()
                .unwrap_or_else(|panic| Err(PluginError::from_panic(panic.as_ref())))
        })
    }

    /// One `run`. The call ends at its deadline or on cancellation even while the guest
    /// waits in a host call (a WASI sleep, `llm.generate`): its future is dropped then.
    async fn run_call(
        &self,
        config: String,
        inputs: String,
        call: CallContext,
    ) -> Result<Value, PluginError> {
        let clock = call.cx.is_granted(Permission::Clock);
        let deadline = call.deadline;
        let stop = call.stop.clone();
        // The host's limit, as configured (a step's shorter `timeout:` is the engine's).
        let timeout = self.shared.config.timeout;
        let (mut store, out, err) = self.store(Some(call), clock, deadline, stop.clone());
        let result = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            instance.call_run(&mut store, &config, &inputs).await
        };
        let result = within(deadline, &stop, result).await;
        let stdout = String::from_utf8_lossy(&out.contents()).into_owned();
        let stderr = String::from_utf8_lossy(&err.contents()).into_owned();
        if let Some(call) = store.into_data().call {
            relay(&call.cx, LogLevel::Info, &stdout);
            relay(&call.cx, LogLevel::Warn, &stderr);
        }
        match result {
            Ok(Ok(json)) => match serde_json::from_str::<Value>(&json) {
                Ok(v @ Value::Object(_)) => Ok(v),
                Ok(_) | Err(_) => Err(PluginError::new(
                    "bad_output",
                    format!(
                        "plugin `{}` returned outputs that are not a JSON object",
                        self.descriptor.name
                    ),
                )),
            },
            Ok(Err(e)) => Err(crate::host::to_api(e)),
            Err(e) => Err(classify(e, &stderr, timeout, &self.shared.config)),
        }
    }
}

/// What a quick call asks.
enum Quick {
    Describe,
    Validate(String),
}

/// What a quick call answered.
enum Answer {
    Described(bindings::Descriptor),
    Validated(Vec<bindings::ConfigIssue>),
}

/// `call`, or the reason it was stopped: the deadline passed or `stop` was cancelled. The
/// epoch deadline stops a guest that computes; this stops one that waits.
async fn within<T>(
    deadline: Instant,
    stop: &CancellationToken,
    call: impl std::future::Future<Output = wasmtime::Result<T>>,
) -> wasmtime::Result<T> {
    tokio::select! {
        r = call => r,
        _ = tokio::time::sleep_until(deadline.into()) => Err(Interrupted::Deadline.into()),
        _ = stop.cancelled() => Err(Interrupted::Cancelled.into()),
    }
}

/// Drives `describe` and `validate`, which are called from synchronous code (loading a
/// component, compiling a workflow) that may itself run inside another tokio runtime.
fn quick_runtime() -> Result<&'static tokio::runtime::Runtime, PluginError> {
    static RUNTIME: std::sync::OnceLock<Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("wasm-quick")
                .enable_time()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| PluginError::new("unavailable", format!("cannot start a runtime: {e}")))
}

/// Forwards captured output to the step log, one line per entry.
fn relay(cx: &RunContext, level: LogLevel, text: &str) {
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        cx.log(level, line);
    }
}

/// Cancels the call's flag when the engine drops the step's future (timeout, abort).
struct StopOnDrop(CancellationToken);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[async_trait::async_trait]
impl Plugin for WasmPlugin {
    fn descriptor(&self) -> &Descriptor {
        &self.inner.descriptor
    }

    fn validate(&self, config: &Value) -> Result<(), Vec<ConfigIssue>> {
        match self.inner.quick(Quick::Validate(config.to_string())) {
            Ok(Answer::Validated(issues)) if issues.is_empty() => Ok(()),
            Ok(Answer::Described(_)) => Ok(()),
            Ok(Answer::Validated(issues)) => Err(issues
                .into_iter()
                .map(|i| ConfigIssue {
                    pointer: i.pointer,
                    message: i.message,
                    help: i.help,
                })
                .collect()),
            Err(e) => Err(vec![ConfigIssue::new(
                "",
                format!("the plugin failed while validating: {}", e.message),
            )]),
        }
    }

    async fn run(&self, config: Value, cx: &RunContext) -> Result<Value, PluginError> {
        let readable: HashSet<String> = ArtifactRef::find_all(&config)
            .into_iter()
            .map(|a| a.sha256)
            .collect();
        let inner = self.inner.clone();
        let (config, inputs) = split(config, &inner.descriptor.inputs);
        let stop = cx.cancel_token().child_token();
        let _guard = StopOnDrop(stop.clone());
        let call = CallContext {
            cx: cx.clone(),
            plugin: inner.descriptor.name.clone(),
            readable,
            deadline: Instant::now() + inner.shared.config.timeout,
            stop,
            artifact_budget: inner.shared.config.max_artifact_bytes.into(),
        };
        // Waits (cancellably: the engine may drop this future) for one of the pool's slots.
        let Ok(slot) = inner.shared.slots.clone().acquire_owned().await else {
            return Err(PluginError::cancelled());
        };
        // The guest computes on a blocking thread, not on one of tokio's workers; its host
        // calls still run on the runtime.
        let handle = tokio::runtime::Handle::current();
        let joined = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            handle.block_on(inner.run_call(config.to_string(), inputs.to_string(), call))
        })
        .await;
        match joined {
            Ok(r) => r,
            Err(e) if e.is_panic() => Err(PluginError::from_panic(e.into_panic().as_ref())),
            Err(_) => Err(PluginError::cancelled()),
        }
    }
}

/// Splits `with:` into configuration and the declared input ports.
fn split(config: Value, inputs: &[Port]) -> (Value, Value) {
    let Value::Object(all) = config else {
        return (config, Value::Object(Map::new()));
    };
    let (mut cfg, mut ins) = (Map::new(), Map::new());
    for (k, v) in all {
        if inputs.iter().any(|p| p.name == k) {
            ins.insert(k, v);
        } else {
            cfg.insert(k, v);
        }
    }
    (Value::Object(cfg), Value::Object(ins))
}

fn convert_descriptor(d: bindings::Descriptor) -> Result<Descriptor, String> {
    let schema: Value = serde_json::from_str(&d.config_schema)
        .map_err(|e| format!("its config schema is not JSON: {e}"))?;
    if jsonschema::validator_for(&schema).is_err() {
        return Err("its config schema is not a valid JSON Schema".to_owned());
    }
    if d.name.is_empty() || d.name.starts_with("wasm:") {
        return Err(format!("`{}` is not a plugin name", d.name));
    }
    let port = |p: bindings::Port| {
        let mut port = Port::new(&p.name, value_type(p.type_));
        port.required = p.required;
        port.description = p.description;
        port
    };
    let mut desc = Descriptor::new(&d.name, &d.version, &d.description)
        .schema(schema)
        .sandboxed();
    desc.inputs = d.inputs.into_iter().map(port).collect();
    desc.outputs = d.outputs.into_iter().map(port).collect();
    desc.cacheable = d.cacheable;
    Ok(desc)
}

fn value_type(t: bindings::ValueType) -> ValueType {
    use bindings::ValueType as W;
    match t {
        W::String => ValueType::String,
        W::Number => ValueType::Number,
        W::Integer => ValueType::Integer,
        W::Boolean => ValueType::Boolean,
        W::List => ValueType::List,
        W::Object => ValueType::Object,
        W::File => ValueType::File,
        W::Any => ValueType::Any,
    }
}

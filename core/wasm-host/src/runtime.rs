//! The wasmtime engine, the linker and the limits every call runs under.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

use crate::bindings::Plugin as PluginWorld;
use crate::host::HostState;
use crate::plugin::WasmPlugin;
use crate::WasmError;

/// Limits and places for WebAssembly plugins.
#[derive(Clone, Debug)]
pub struct WasmConfig {
    /// Most linear memory one call may use, in bytes.
    pub max_memory: usize,
    /// Wall-clock limit of one call; a step's `timeout:` may cut it shorter.
    pub timeout: Duration,
    /// Instruction budget of one call (wasmtime fuel), if any.
    pub fuel: Option<u64>,
    /// Where compiled components are cached by sha256; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// Searched for `uses: wasm:NAME.wasm` after the workflow's own directory.
    pub plugin_dirs: Vec<PathBuf>,
    /// Most bytes one call may store with `artifacts.write`.
    pub max_artifact_bytes: u64,
}

impl Default for WasmConfig {
    fn default() -> Self {
        WasmConfig {
            max_memory: 256 << 20,
            timeout: Duration::from_secs(60),
            fuel: None,
            cache_dir: None,
            plugin_dirs: Vec::new(),
            max_artifact_bytes: 256 << 20,
        }
    }
}

impl WasmConfig {
    /// Applies `MEDIAFLOW_WASM_MEMORY_MB`, `MEDIAFLOW_WASM_TIMEOUT_SECS`,
    /// `MEDIAFLOW_WASM_FUEL` and `MEDIAFLOW_WASM_ARTIFACT_MB` when they are set to numbers.
    pub fn with_env(mut self) -> Self {
        let num = |k: &str| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if let Some(mb) = num("MEDIAFLOW_WASM_MEMORY_MB") {
            self.max_memory = (mb as usize).saturating_mul(1 << 20);
        }
        if let Some(s) = num("MEDIAFLOW_WASM_TIMEOUT_SECS") {
            self.timeout = Duration::from_secs(s);
        }
        if let Some(f) = num("MEDIAFLOW_WASM_FUEL") {
            self.fuel = Some(f);
        }
        if let Some(mb) = num("MEDIAFLOW_WASM_ARTIFACT_MB") {
            self.max_artifact_bytes = mb.saturating_mul(1 << 20);
        }
        self
    }
}

/// Instances that may exist at once per runtime.
const POOL_INSTANCES: u32 = 128;
/// `run` calls that may execute at once; the rest of the pool is kept for `describe` and
/// `validate`, which run while workflows compile.
const RUN_SLOTS: usize = POOL_INSTANCES as usize - 16;

/// Bytes of a slot's memory kept mapped between calls.
const KEEP_RESIDENT: usize = 4 << 20;

fn pool(config: &WasmConfig) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(POOL_INSTANCES * 4)
        .total_memories(POOL_INSTANCES)
        .total_tables(POOL_INSTANCES * 4)
        .max_memories_per_component(4)
        .max_memory_size(config.max_memory)
        // Reset a finished call's memory by rewriting the pages it touched (found with
        // Linux's PAGEMAP_SCAN where available) instead of unmapping them: no page faults on
        // the next call and no TLB shootdowns across cores.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT / 16)
        .decommit_batch_size(8)
        // Calls are async (they run on fiber stacks) so the host can drop one at its
        // deadline; one stack per instance.
        .total_stacks(POOL_INSTANCES);
    pool
}

/// How often the epoch advances; deadlines are checked at this granularity.
pub(crate) const TICK: Duration = Duration::from_millis(5);

pub(crate) struct Shared {
    pub engine: Engine,
    pub linker: Linker<HostState>,
    pub config: WasmConfig,
    /// `run` calls wait here for a pool slot rather than fail when all are busy.
    pub slots: Arc<tokio::sync::Semaphore>,
}

/// Loads and runs WebAssembly plugins. Cheap to clone.
#[derive(Clone)]
pub struct WasmRuntime {
    shared: Arc<Shared>,
    loaded: Arc<Mutex<HashMap<String, Arc<WasmPlugin>>>>,
}

impl WasmRuntime {
    /// A runtime with `config`'s limits. Plugins granted `llm` reach the text generation
    /// their step's [`RunContext`](mediaflow_plugin_api::RunContext) offers.
    pub fn new(config: WasmConfig) -> Result<Self, WasmError> {
        let mut wc = wasmtime::Config::new();
        wc.wasm_component_model(true)
            .epoch_interruption(true)
            .cranelift_opt_level(OptLevel::Speed)
            .consume_fuel(config.fuel.is_some());
        // Instances come from a pool of pre-reserved slots, so a call's fresh instance costs
        // a few microseconds instead of mapping new memory. Where the address space is too
        // small for the pool (a tight `ulimit -v`), instances are allocated on demand.
        wc.allocation_strategy(InstanceAllocationStrategy::Pooling(pool(&config)));
        let engine = match Engine::new(&wc) {
            Ok(engine) => engine,
            Err(_) => {
                wc.allocation_strategy(InstanceAllocationStrategy::OnDemand);
                Engine::new(&wc).map_err(|e| WasmError::Engine(format!("{e:#}")))?
            }
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        PluginWorld::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| WasmError::Engine(format!("{e:#}")))?;
        spawn_ticker(&engine).map_err(|e| WasmError::Engine(format!("epoch thread: {e}")))?;
        Ok(WasmRuntime {
            shared: Arc::new(Shared {
                engine,
                linker,
                config,
                slots: Arc::new(tokio::sync::Semaphore::new(RUN_SLOTS)),
            }),
            loaded: Arc::default(),
        })
    }

    pub fn config(&self) -> &WasmConfig {
        &self.shared.config
    }

    /// `run` calls executing now (each holds one of the 112 slots until its guest has
    /// really stopped, not merely until its step gave up on it).
    pub fn running_calls(&self) -> usize {
        RUN_SLOTS - self.shared.slots.available_permits()
    }

    /// Loads a component file; `pin` is an expected sha256 (hex). The same bytes load once.
    pub fn load_file(&self, path: &Path, pin: Option<&str>) -> Result<Arc<WasmPlugin>, WasmError> {
        let display = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| WasmError::Io {
            path: display.clone(),
            source,
        })?;
        let sha = hex::encode(Sha256::digest(&bytes));
        if let Some(expected) = pin {
            if !expected.eq_ignore_ascii_case(&sha) {
                return Err(WasmError::Checksum {
                    path: display,
                    expected: expected.to_owned(),
                    actual: sha,
                });
            }
        }
        if let Some(p) = self.lock().get(&sha) {
            return Ok(p.clone());
        }
        let component = crate::cache::compile(&self.shared, &bytes, &sha, &display)?;
        let plugin = Arc::new(WasmPlugin::new(
            self.shared.clone(),
            &component,
            &display,
            sha.clone(),
        )?);
        self.lock().insert(sha, plugin.clone());
        Ok(plugin)
    }

    /// Every `*.wasm` in `dir`, each loaded or with the reason it could not be.
    pub fn load_dir(&self, dir: &Path) -> Vec<(PathBuf, Result<Arc<WasmPlugin>, WasmError>)> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|p| {
                let r = self.load_file(&p, None);
                (p, r)
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<WasmPlugin>>> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Advances the engine's epoch every [`TICK`] for as long as the engine lives.
fn spawn_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(TICK);
            match weak.upgrade() {
                Some(e) => e.increment_epoch(),
                None => return,
            }
        })
        .map(drop)
}

//! Test support: plugins that only tests use (counting, failing, sleeping, panicking) and a
//! harness that runs workflows on a fresh SQLite file or a fresh PostgreSQL database.

pub mod guests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mediaflow_engine::{Engine, EngineOptions, PluginLlm, RunControl, RunReport};
use mediaflow_plugin_api::{
    Descriptor, LlmProvider, Plugin, PluginError, Port, Registry, RunContext, Value, ValueType,
};
use mediaflow_store::{ArtifactStore, Store};
use mediaflow_workflow::{compile_str, Plan};
use serde_json::{json, Map};

/// Deterministic pseudo-random numbers for test and bench data (a 64-bit LCG: the same
/// values on every machine, no `rand` needed).
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Lcg(seed)
    }

    /// The next value, uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as f32 / (1u64 << 31) as f32) * (hi - lo) + lo
    }

    /// `n` values, uniform in `[lo, hi)`.
    pub fn values(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// Shared observations the test plugins make.
#[derive(Default)]
pub struct Probe {
    /// Calls per key (`with.key`, default "").
    pub calls: Mutex<HashMap<String, usize>>,
    /// When each call started, per key.
    pub started: Mutex<HashMap<String, Vec<Instant>>>,
    running: AtomicUsize,
    /// Most calls running at once.
    pub max_running: AtomicUsize,
}

impl Probe {
    pub fn calls(&self, key: &str) -> usize {
        self.calls
            .lock()
            .map(|c| c.get(key).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    pub fn starts(&self, key: &str) -> Vec<Instant> {
        self.started
            .lock()
            .map(|s| s.get(key).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    pub fn max_running(&self) -> usize {
        self.max_running.load(Ordering::SeqCst)
    }

    fn enter(&self, key: &str) -> usize {
        let n = {
            let mut calls = self.calls.lock().expect("probe lock");
            let n = calls.entry(key.to_owned()).or_default();
            *n += 1;
            *n
        };
        self.started
            .lock()
            .expect("probe lock")
            .entry(key.to_owned())
            .or_default()
            .push(Instant::now());
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        n
    }

    fn leave(&self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `test.probe`: counts calls per `key`, optionally sleeps `ms`, fails the first `fail`
/// calls, panics when `panic: true`, and echoes `value`.
pub struct ProbePlugin {
    descriptor: Descriptor,
    probe: Arc<Probe>,
}

impl ProbePlugin {
    pub fn new(name: &str, probe: Arc<Probe>, max_concurrency: Option<usize>) -> Self {
        let mut descriptor = Descriptor::new(name, "1.0.0", "test plugin: counts, sleeps, fails")
            .input(Port::new("value", ValueType::Any))
            .input(Port::new("text", ValueType::String))
            .output(Port::new("value", ValueType::Any))
            .output(Port::new("call", ValueType::Integer))
            .output(Port::new("file", ValueType::File))
            .schema(json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "key": {"type": "string"},
                    "value": {},
                    "text": {"type": "string"},
                    "ms": {"type": "integer", "minimum": 0},
                    "fail": {"type": "integer", "minimum": 0},
                    "fatal": {"type": "boolean"},
                    "panic": {"type": "boolean"},
                    "ignore_cancel": {"type": "boolean"}
                }
            }));
        descriptor.max_concurrency = max_concurrency;
        ProbePlugin { descriptor, probe }
    }

    /// Declares that the plugin batches concurrent calls (as `llm.generate` does).
    pub fn batching(mut self) -> Self {
        self.descriptor.batches = true;
        self
    }
}

struct Leave<'a>(&'a Probe);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}

#[async_trait]
impl Plugin for ProbePlugin {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    async fn run(&self, config: Value, cx: &RunContext) -> Result<Value, PluginError> {
        let key = config
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let call = self.probe.enter(&key);
        let _leave = Leave(&self.probe);
        cx.info(&format!("call {call} of `{key}`"));
        let ms = config.get("ms").and_then(Value::as_u64).unwrap_or(0);
        if ms > 0 {
            let sleep = tokio::time::sleep(Duration::from_millis(ms));
            if config
                .get("ignore_cancel")
                .and_then(Value::as_bool)
                .unwrap_or(false)
            {
                sleep.await;
            } else {
                tokio::select! {
                    _ = sleep => {}
                    _ = cx.cancelled() => return Err(PluginError::cancelled()),
                }
            }
        }
        if config
            .get("panic")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            panic!("probe `{key}` was told to panic");
        }
        let fail = config.get("fail").and_then(Value::as_u64).unwrap_or(0) as usize;
        if call <= fail {
            let msg = format!("planned failure {call} of {fail}");
            return Err(
                if config
                    .get("fatal")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                {
                    PluginError::new("planned", msg)
                } else {
                    PluginError::new("planned", msg).retryable()
                },
            );
        }
        Ok(json!({"value": config.get("value").cloned().unwrap_or(Value::Null), "call": call}))
    }
}

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests use (`MEDIAFLOW_TEST_POSTGRES_URL`, default the local one).
pub fn postgres_admin_url() -> String {
    std::env::var("MEDIAFLOW_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Creates a fresh, empty PostgreSQL database and returns its URL.
pub async fn fresh_postgres() -> String {
    use sqlx::Connection;
    let admin = postgres_admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!("PostgreSQL is not reachable at {admin}: {e}. Start it (see .ci/run) or set MEDIAFLOW_TEST_POSTGRES_URL")
    });
    let name = format!("mf_test_{}", uuid::Uuid::now_v7().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}

/// Drops a database made by [`fresh_postgres`].
pub async fn drop_postgres(url: &str) {
    use sqlx::Connection;
    let Some((_, name)) = url.rsplit_once('/') else {
        return;
    };
    if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
}

/// A store, an engine and the test plugins, on one backend.
pub struct Harness {
    pub db: Db,
    pub dir: tempfile::TempDir,
    pub url: String,
    pub store: Store,
    pub artifacts: ArtifactStore,
    pub probe: Arc<Probe>,
    pub registry: Registry,
}

impl Harness {
    pub async fn new(db: Db) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = match db {
            Db::Sqlite => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("mediaflow.db").display()
            ),
            Db::Postgres => fresh_postgres().await,
        };
        let store = Store::connect(&url).await.expect("open store");
        let artifacts = ArtifactStore::new(dir.path().join("artifacts"), store.clone());
        let probe = Arc::new(Probe::default());
        let mut registry = mediaflow_builtin::registry();
        let probes: [Arc<dyn Plugin>; 3] = [
            Arc::new(ProbePlugin::new("test.probe", probe.clone(), None)),
            Arc::new(ProbePlugin::new("test.single", probe.clone(), Some(1))),
            Arc::new(ProbePlugin::new("test.batched", probe.clone(), Some(3)).batching()),
        ];
        registry.add(probes, "tests").expect("distinct names");
        Harness {
            db,
            dir,
            url,
            store,
            artifacts,
            probe,
            registry,
        }
    }

    /// Adds plugins to the harness's registry (refusing names already taken).
    pub fn register(&mut self, plugins: impl IntoIterator<Item = Arc<dyn Plugin>>) {
        if let Err(e) = self.registry.add(plugins, "test") {
            panic!("{e}");
        }
    }

    /// An engine on the harness's store; `llm.generate`, when registered, serves the
    /// steps' LLM requests.
    pub fn engine(&self, options: EngineOptions) -> Engine {
        let llm = self
            .registry
            .get("llm.generate")
            .and_then(|p| PluginLlm::new(p.clone()).ok())
            .map(|p| Arc::new(p) as Arc<dyn LlmProvider>);
        Engine::new(self.store.clone(), self.artifacts.clone(), options).with_llm(llm)
    }

    /// Resumes a stored run the way `mediaflow resume` does: compiles its stored workflow
    /// against the harness's registry, then drives it.
    pub async fn resume(&self, run_id: &str, ctl: RunControl) -> RunReport {
        let engine = self.engine(EngineOptions::default());
        let stored = engine.stored_workflow(run_id).await.expect("stored run");
        let plan = match compile_str(&stored.file, &stored.yaml, &self.registry) {
            Ok(p) => Arc::new(p),
            Err(d) => panic!("stored workflow does not compile:\n{}", d.render(false)),
        };
        engine
            .resume(run_id, plan, ctl)
            .await
            .expect("resume finishes")
    }

    pub fn plan(&self, yaml: &str) -> Arc<Plan> {
        match compile_str("test.yaml", yaml, &self.registry) {
            Ok(p) => Arc::new(p),
            Err(d) => panic!("test workflow does not compile:\n{}", d.render(false)),
        }
    }

    /// Runs a workflow with default options.
    pub async fn run(&self, yaml: &str, inputs: Value) -> RunReport {
        self.run_with(
            yaml,
            inputs,
            EngineOptions::default(),
            RunControl::default(),
        )
        .await
    }

    pub async fn run_with(
        &self,
        yaml: &str,
        inputs: Value,
        options: EngineOptions,
        ctl: RunControl,
    ) -> RunReport {
        let inputs: Map<String, Value> = match inputs {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        self.engine(options)
            .run(self.plan(yaml), inputs, ctl)
            .await
            .expect("run finishes")
    }

    pub async fn cleanup(self) {
        self.store.close().await;
        if self.db == Db::Postgres {
            drop_postgres(&self.url).await;
        }
    }
}

/// Defines one test per backend: `NAME_sqlite` and `NAME_postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($(async fn $name:ident($h:ident) $body:block)*) => {
        $(
            mod $name {
                use super::*;
                async fn body($h: &mut $crate::Harness) $body

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let mut h = $crate::Harness::new($crate::Db::Sqlite).await;
                    body(&mut h).await;
                    h.cleanup().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let mut h = $crate::Harness::new($crate::Db::Postgres).await;
                    body(&mut h).await;
                    h.cleanup().await;
                }
            }
        )*
    };
}

/// `test.noop`: does nothing, for measuring the engine's own overhead.
pub struct NoopPlugin {
    descriptor: Descriptor,
}

impl Default for NoopPlugin {
    fn default() -> Self {
        NoopPlugin {
            descriptor: Descriptor::new("test.noop", "1.0.0", "does nothing")
                .output(Port::new("ok", ValueType::Boolean))
                .schema(json!({"type": "object"})),
        }
    }
}

#[async_trait]
impl Plugin for NoopPlugin {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    async fn run(&self, _config: Value, _cx: &RunContext) -> Result<Value, PluginError> {
        Ok(json!({"ok": true}))
    }
}

/// The outputs of step `step` of `report` (panics, showing the report, if it has none).
pub fn step_outputs(report: &RunReport, step: &str) -> Value {
    report
        .steps
        .get(step)
        .map(|s| s.outputs.clone())
        .unwrap_or_else(|| panic!("no step {step}: {report:#?}"))
}

/// The error of step `step` of `report`, as text (panics, showing the report, if it has
/// none).
pub fn step_error(report: &RunReport, step: &str) -> String {
    report
        .steps
        .get(step)
        .and_then(|s| s.error.as_ref())
        .map(|e| e.to_string())
        .unwrap_or_else(|| panic!("no error for {step}: {report:#?}"))
}

/// A workflow of `n` no-op steps: all independent (`wide`) or each needing the previous.
pub fn noop_dag(n: usize, wide: bool) -> String {
    let mut y = String::from("name: bench\nsteps:\n");
    for i in 0..n {
        if wide || i == 0 {
            y.push_str(&format!("  s{i}: {{ uses: test.noop }}\n"));
        } else {
            y.push_str(&format!(
                "  s{i}: {{ uses: test.noop, needs: [s{}] }}\n",
                i - 1
            ));
        }
    }
    y
}

/// Kills a supervised plugin process with SIGKILL `after` it was first seen running
/// (polling for up to 10 s). Await the handle to know it happened.
pub fn kill_when_running(
    sup: Arc<mediaflow_process_host::Supervisor>,
    after: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for _ in 0..500 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if let Some(pid) = sup.pid().await {
                tokio::time::sleep(after).await;
                let _ = std::process::Command::new("kill")
                    .arg("-9")
                    .arg(pid.to_string())
                    .status();
                return;
            }
        }
    })
}

/// An event sink that drops everything (benchmarks measure the call, not the logging).
struct Quiet;

impl mediaflow_plugin_api::EventSink for Quiet {
    fn progress(&self, _: f32, _: Option<&str>) {}
    fn log(&self, _: mediaflow_plugin_api::LogLevel, _: &str) {}
}

/// A step context on an in-memory store with artifacts under `dir`, for calling plugins
/// directly in benchmarks.
pub async fn bench_context(dir: &std::path::Path) -> RunContext {
    let store = Store::in_memory().await.expect("in-memory store");
    let artifacts = Arc::new(ArtifactStore::new(dir.to_path_buf(), store));
    RunContext::new(
        "bench".into(),
        "step".into(),
        None,
        1,
        Default::default(),
        Arc::new(Quiet),
        artifacts,
    )
}

/// The python of the reference venv (`scripts/reference-venv.sh`: onnxruntime, VADER,
/// implicit, the OpenAPI validator), made on first use: the side-by-side tests' and
/// benchmarks' Python, never a runtime dependency.
pub fn reference_python() -> std::path::PathBuf {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/reference-venv.sh");
    let out = std::process::Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

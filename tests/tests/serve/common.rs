//! A service on 127.0.0.1 over a test harness's store, and an HTTP client for it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use mediaflow_server::{create_token, Scope, Service, ServiceConfig};
use mediaflow_tests::Harness;
use mediaflow_wasm_host::{ConfinedWasmLoader, WasmConfig, WasmRuntime};
use serde_json::{json, Value};

/// The files root of every service in this test binary (the file steps read it from the
/// environment, which the whole process shares).
pub fn files_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("mediaflow-serve-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("files root");
        let dir = dir.canonicalize().expect("files root");
        std::env::set_var(mediaflow_builtin::FILES_ROOT_ENV, &dir);
        dir
    })
}

/// A service over `store` (the harness's, or another pool on the same database, as a
/// second `serve` process would have) with the harness's plugins and the workflows in
/// `dir`. Its scheduler does not run by itself: tests call `schedule_pass`.
pub fn service(h: &Harness, store: mediaflow_store::Store, dir: &Path) -> Service {
    service_with(h, store, dir, h.registry.clone())
}

/// [`service`], compiling submitted workflow text against `submitted`.
pub fn service_with(
    h: &Harness,
    store: mediaflow_store::Store,
    dir: &Path,
    submitted: mediaflow_plugin_api::Registry,
) -> Service {
    let artifacts =
        mediaflow_store::ArtifactStore::new(h.dir.path().join("artifacts"), store.clone());
    let engine =
        mediaflow_engine::Engine::new(store, artifacts, mediaflow_engine::EngineOptions::default());
    Service::new(ServiceConfig {
        engine,
        registry: h.registry.clone(),
        submitted_registry: submitted,
        workflows_dir: Some(dir.canonicalize().expect("dir")),
        plugin_health: Arc::new(|| json!({"processes": []})),
        run_schedules: false,
    })
}

/// A service on 127.0.0.1 over the harness's store, with tokens of each scope.
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    pub run: String,
    pub read: String,
    pub service: Service,
    pub _workflows: tempfile::TempDir,
    pub plugins: tempfile::TempDir,
}

pub const HELLO: &str = "\
name: hello
inputs:
  who: { type: string, default: world }
steps:
  greet:
    uses: text.template
    with: { template: 'hello {{ who }}', vars: { who: '${{ inputs.who }}' } }
outputs:
  text: ${{ steps.greet.outputs.text }}
";

impl Api {
    pub async fn start(h: &Harness) -> Api {
        files_root();
        let workflows = tempfile::tempdir().expect("workflows dir");
        std::fs::write(workflows.path().join("hello.yaml"), HELLO).expect("write workflow");
        std::fs::write(
            workflows.path().join("broken.yaml"),
            "name: broken\nsteps: 3\n",
        )
        .expect("write workflow");
        let plugins = tempfile::tempdir().expect("plugins dir");
        let runtime = WasmRuntime::new(WasmConfig {
            plugin_dirs: vec![plugins.path().to_owned()],
            ..WasmConfig::default()
        })
        .expect("wasm runtime");
        let mut submitted = h.registry.clone();
        submitted.add_loader("wasm", Arc::new(ConfinedWasmLoader { runtime }));
        let service = service_with(h, h.store.clone(), workflows.path(), submitted);
        let (listener, addr) = mediaflow_server::bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let served = service.clone();
        tokio::spawn(mediaflow_server::serve_on(
            listener,
            served,
            std::future::pending(),
            Duration::from_secs(1),
        ));
        let run = create_token(&h.store, "ci", Scope::Run)
            .await
            .expect("token");
        let read = create_token(&h.store, "dashboard", Scope::Read)
            .await
            .expect("token");
        Api {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            run: run.token,
            read: read.token,
            service,
            _workflows: workflows,
            plugins,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.read)
            .send()
            .await
            .expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.run)
            .json(&body)
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Starts a run; its id.
    pub async fn submit(&self, workflow: &str, inputs: Value) -> String {
        let (status, body) = self
            .post(
                "/api/v1/runs",
                json!({"workflow": workflow, "inputs": inputs}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["run_id"].as_str().expect("run_id").to_owned()
    }

    /// Follows a run's events to `run_finished`: every event, in order.
    pub async fn follow(&self, run_id: &str) -> Vec<(String, Value)> {
        let resp = self
            .http
            .get(self.url(&format!("/api/v1/runs/{run_id}/events")))
            .bearer_auth(&self.read)
            .send()
            .await
            .expect("events");
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap_or(""),
            "text/event-stream"
        );
        let mut stream = resp.bytes_stream();
        let mut buf = String::new();
        let mut events = Vec::new();
        let read = async {
            while let Some(chunk) = stream.next().await {
                buf.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
                while let Some(end) = buf.find("\n\n") {
                    let block: String = buf.drain(..end + 2).collect();
                    let mut name = String::new();
                    let mut data = String::new();
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event: ") {
                            name = v.to_owned();
                        } else if let Some(v) = line.strip_prefix("data: ") {
                            data.push_str(v);
                        }
                    }
                    if name.is_empty() {
                        continue; // a keep-alive comment
                    }
                    let last = name == "run_finished";
                    events.push((name, serde_json::from_str(&data).unwrap_or(Value::Null)));
                    if last {
                        return;
                    }
                }
            }
        };
        // A guard against a stream that never ends, not a speed check.
        tokio::time::timeout(Duration::from_secs(120), read)
            .await
            .expect("the event stream ends with run_finished");
        events
    }
}

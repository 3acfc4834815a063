//! Per-call overhead of the process-plugin protocol: the same trivial plugin called in
//! process and through a plugin process (JSON lines over pipes), side by side.
//! `cargo bench -p mediaflow-tests --bench protocol`.

use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use mediaflow_plugin_api::{EventSink, LogLevel, Plugin, RunContext};
use mediaflow_process_host::{describe, Supervisor};
use mediaflow_store::{ArtifactStore, Store};
use mediaflow_tests::NoopPlugin;
use serde_json::json;

struct Quiet;

impl EventSink for Quiet {
    fn progress(&self, _: f32, _: Option<&str>) {}
    fn log(&self, _: LogLevel, _: &str) {}
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cx, process_echo) = rt.block_on(async {
        let store = Store::in_memory().await.unwrap();
        let artifacts = Arc::new(ArtifactStore::new(dir.path().to_path_buf(), store));
        let cx = RunContext::new(
            "bench".into(),
            "step".into(),
            None,
            1,
            Default::default(),
            Arc::new(Quiet),
            artifacts,
        );
        let binary = describe(Path::new(env!("CARGO_BIN_EXE_testplugin-proc")))
            .await
            .unwrap();
        let sup = Supervisor::new(binary, vec![]);
        let echo = sup
            .plugins()
            .into_iter()
            .find(|p| p.descriptor().name == "proc.echo")
            .unwrap();
        echo.run(json!({"value": 1}), &cx).await.unwrap(); // start the process
        (cx, echo)
    });
    let in_process: Arc<dyn Plugin> = Arc::new(NoopPlugin::default());
    let mut g = c.benchmark_group("plugin_call");
    g.bench_function("in_process", |b| {
        b.to_async(&rt)
            .iter(|| async { in_process.run(json!({"value": 1}), &cx).await.unwrap() })
    });
    g.bench_function("process_protocol", |b| {
        b.to_async(&rt)
            .iter(|| async { process_echo.run(json!({"value": 1}), &cx).await.unwrap() })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

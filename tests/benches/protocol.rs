//! Per-call overhead of the process-plugin protocol: the same trivial plugin called in
//! process and through a plugin process (JSON lines over pipes), side by side.
//! `cargo bench -p mediaflow-tests --bench protocol`.

use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use mediaflow_plugin_api::Plugin;
use mediaflow_process_host::{describe, Supervisor};
use mediaflow_tests::{bench_context, NoopPlugin};
use serde_json::json;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cx, process_echo) = rt.block_on(async {
        let cx = bench_context(dir.path()).await;
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

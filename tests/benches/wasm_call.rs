//! Per-call overhead of a trivial WebAssembly plugin (fresh `Store` + instantiate from the
//! cached `InstancePre` + call + JSON both ways + the hop to a blocking thread) next to the
//! same logic as a native plugin, through the same `Plugin::run` the engine calls.
//! `cargo bench -p mediaflow-tests --bench wasm_call`.

use std::sync::Arc;

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, Criterion};
use mediaflow_plugin_api::{Descriptor, Plugin, PluginError, Port, RunContext, Value, ValueType};
use mediaflow_tests::bench_context;
use mediaflow_tests::guests::guest;
use mediaflow_wasm_host::{WasmConfig, WasmRuntime};
use serde_json::json;

/// `bench.echo` written natively: the same logic as `tests/wasm/trivial`.
struct NativeEcho(Descriptor);

#[async_trait]
impl Plugin for NativeEcho {
    fn descriptor(&self) -> &Descriptor {
        &self.0
    }
    async fn run(&self, config: Value, _cx: &RunContext) -> Result<Value, PluginError> {
        let text = config
            .get("text")
            .and_then(Value::as_str)
            .ok_or_else(|| PluginError::new("bad_input", "`text` must be a string"))?;
        Ok(json!({ "text": text }))
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cx = rt.block_on(bench_context(dir.path()));
    let runtime = WasmRuntime::new(WasmConfig::default()).unwrap();
    let wasm: Arc<dyn Plugin> = runtime.load_file(&guest("trivial"), None).unwrap();
    let native: Arc<dyn Plugin> = Arc::new(NativeEcho(
        Descriptor::new("bench.echo", "0.1.0", "Returns its input")
            .input(Port::new("text", ValueType::String))
            .output(Port::new("text", ValueType::String)),
    ));
    let input = json!({"text": "Council approves the budget"});
    let mut g = c.benchmark_group("echo_call");
    g.bench_function("native", |b| {
        b.to_async(&rt)
            .iter(|| async { native.run(input.clone(), &cx).await.unwrap() })
    });
    g.bench_function("wasm", |b| {
        b.to_async(&rt)
            .iter(|| async { wasm.run(input.clone(), &cx).await.unwrap() })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = bench
}
criterion_main!(benches);

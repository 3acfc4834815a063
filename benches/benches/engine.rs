//! Engine overhead: 1,000-step wide and deep DAGs of a no-op plugin, with the store in
//! memory (SQLite `:memory:`), in an SQLite file, and in PostgreSQL, side by side.
//!
//! `cargo bench -p mediaflow-benches --bench engine`. PostgreSQL cases run when the server
//! at `MEDIAFLOW_TEST_POSTGRES_URL` (default: the local one) answers, and are skipped with
//! a message otherwise.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mediaflow_engine::{Engine, EngineOptions, RunControl};
use mediaflow_plugin_api::Registry;
use mediaflow_store::{ArtifactStore, RunStatus, Store};
use mediaflow_tests::{fresh_postgres, noop_dag, NoopPlugin};
use mediaflow_workflow::compile_str;

const STEPS: usize = 1000;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut registry = Registry::new();
    let noop: Arc<dyn mediaflow_plugin_api::Plugin> = Arc::new(NoopPlugin::default());
    let _ = registry.add([noop], "bench");
    let dir = tempfile::tempdir().unwrap();
    let mut backends: Vec<(&str, String)> = vec![
        ("memory", "sqlite::memory:".to_owned()),
        (
            "sqlite",
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("bench.db").display()
            ),
        ),
    ];
    let pg = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), async {
            let url = fresh_postgres().await;
            Store::connect(&url).await.ok().map(|_| url)
        })
        .await
        .ok()
        .flatten()
    });
    match &pg {
        Some(url) => backends.push(("postgres", url.clone())),
        None => eprintln!("PostgreSQL not reachable: skipping the postgres cases"),
    }
    let mut group = c.benchmark_group("engine_1000_noop_steps");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(STEPS as u64));
    for shape in ["wide", "deep"] {
        let plan = Arc::new(
            compile_str("bench.yaml", &noop_dag(STEPS, shape == "wide"), &registry).unwrap(),
        );
        for (name, url) in &backends {
            let store = rt.block_on(Store::connect(url)).unwrap();
            let artifacts = ArtifactStore::new(dir.path().join("artifacts"), store.clone());
            let engine = Engine::new(
                store,
                artifacts,
                EngineOptions {
                    no_cache: true,
                    max_parallel: 64,
                    ..EngineOptions::default()
                },
            );
            group.bench_with_input(BenchmarkId::new(shape, name), &plan, |b, plan| {
                b.to_async(&rt).iter(|| async {
                    let r = engine
                        .run(plan.clone(), Default::default(), RunControl::default())
                        .await
                        .unwrap();
                    assert_eq!(r.status, RunStatus::Succeeded);
                })
            });
        }
    }
    group.finish();
    if let Some(url) = pg {
        rt.block_on(mediaflow_tests::drop_postgres(&url));
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Distributed runs through the work queue on PostgreSQL: steps per second with 1, 2 and 4
//! workers, for no-op steps and for 100 ms steps, and the latency from a task being queued
//! to a worker starting it (p50, p99); next to the in-process engine on the same workflow.
//!
//! `cargo bench -p mediaflow-benches --bench queue` (needs the PostgreSQL at
//! `MEDIAFLOW_TEST_POSTGRES_URL`, default the local one). The workers are `Worker`s in this
//! process, each with its own connection pool and data dir, so the figures are the queue's
//! (claims, leases, notifications, results), not process start-up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mediaflow_engine::{DispatchOptions, Engine, EngineOptions, RunControl, Worker, WorkerOptions};
use mediaflow_plugin_api::{Plugin, Registry};
use mediaflow_store::{ArtifactStore, RunStatus, Store};
use mediaflow_tests::{drop_postgres, fresh_postgres};
use mediaflow_workflow::compile_str;
use tokio_util::sync::CancellationToken;

const ITEMS: usize = 400;

/// `n` no-op steps one after another: each is queued only when the one before finished, so
/// the time until a worker starts it is the queue's pick-up latency, not a backlog.
fn chain(n: usize) -> String {
    let mut y = String::from("name: queue-chain\nsteps:\n");
    for i in 0..n {
        let needs = if i == 0 {
            String::new()
        } else {
            format!(", needs: [s{}]", i - 1)
        };
        y.push_str(&format!(
            "  s{i}: {{ uses: core.delay, with: {{ duration: 0ms }}{needs} }}\n"
        ));
    }
    y
}

fn workflow(delay: &str) -> String {
    format!(
        "name: queue-bench\ninputs:\n  items: {{ type: list }}\nsteps:\n  items:\n    uses: core.delay\n    for_each: ${{{{ inputs.items }}}}\n    with:\n      duration: {delay}\n"
    )
}

struct Figures {
    steps_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64
}

async fn one(
    registry: &Registry,
    plugins: &[Arc<dyn Plugin>],
    workers: usize,
    concurrency: usize,
    items: usize,
    delay: &str,
) -> Figures {
    let yaml = match delay {
        "chain" => chain(items),
        d => workflow(d),
    };
    let url = fresh_postgres().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::connect(&url).await.expect("connect");
    let plan = Arc::new(compile_str("bench.yaml", &yaml, registry).expect("plan"));
    let stop = CancellationToken::new();
    let mut handles = Vec::new();
    for w in 0..workers {
        let own = Store::connect(&url).await.expect("connect");
        let data = dir.path().join(format!("w{w}"));
        let artifacts = ArtifactStore::new(data.join("artifacts"), own.clone());
        let worker = Worker::new(
            own,
            artifacts,
            plugins.iter().cloned(),
            WorkerOptions {
                id: format!("bench-{w}"),
                concurrency,
                ..WorkerOptions::default()
            },
            None,
            None,
        );
        let stop = stop.clone();
        handles.push(tokio::spawn(async move { worker.run(stop).await }));
    }
    let distributed = workers > 0;
    let engine = Engine::new(
        store.clone(),
        ArtifactStore::new(dir.path().join("coordinator"), store.clone()),
        EngineOptions {
            no_cache: true,
            distributed: distributed.then(DispatchOptions::default),
            max_parallel: concurrency.max(1),
            ..EngineOptions::default()
        },
    );
    let started = Instant::now();
    let mut inputs = serde_json::Map::new();
    if delay != "chain" {
        inputs.insert("items".into(), (0..items).collect::<Vec<_>>().into());
    }
    let report = engine
        .run(plan, inputs, RunControl::default())
        .await
        .expect("run");
    let took = started.elapsed();
    assert_eq!(report.status, RunStatus::Succeeded);
    let mut waits: Vec<i64> = store
        .run_tasks(&report.run_id)
        .await
        .expect("tasks")
        .iter()
        .filter_map(|t| Some(t.started_at? - t.enqueued_at))
        .collect();
    waits.sort_unstable();
    stop.cancel();
    for h in handles {
        let _ = h.await;
    }
    drop(store);
    drop_postgres(&url).await;
    Figures {
        steps_per_s: items as f64 / took.as_secs_f64(),
        p50_ms: percentile(&waits, 0.5),
        p99_ms: percentile(&waits, 0.99),
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let registry = mediaflow_builtin::registry();
    let plugins: Vec<Arc<dyn Plugin>> = registry
        .names()
        .filter_map(|n| registry.get(n).cloned())
        .collect();
    let reachable = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), async {
            let url = fresh_postgres().await;
            drop_postgres(&url).await;
        })
        .await
        .is_ok()
    });
    if !reachable {
        eprintln!("PostgreSQL not reachable: nothing to measure");
        return;
    }
    println!("| steps | workers × concurrency | steps/s | queued→started p50 | p99 |");
    println!("|---|---|---|---|---|");
    let cases: [(&str, &str, usize, usize); 3] = [
        ("no-op", "0ms", ITEMS, 4),
        ("100 ms", "100ms", ITEMS / 4, 1),
        ("chain of 100 no-op", "chain", 100, 1),
    ];
    for (label, delay, items, concurrency) in cases {
        let local = rt.block_on(one(&registry, &plugins, 0, 4, items, delay));
        println!(
            "| {label} | in-process engine (4 at once) | {:.0} | – | – |",
            local.steps_per_s
        );
        for workers in [1, 2, 4] {
            let f = rt.block_on(one(&registry, &plugins, workers, concurrency, items, delay));
            println!(
                "| {label} | {workers} × {concurrency} | {:.1} | {:.0} ms | {:.0} ms |",
                f.steps_per_s, f.p50_ms, f.p99_ms
            );
        }
    }
}

//! `POST /api/v1/runs` of a 3-step no-op workflow by 32 concurrent clients, over real HTTP
//! on 127.0.0.1, on SQLite and on PostgreSQL: requests per second, p50/p99 latency, and
//! how long until every run has finished.
//!
//!   cargo bench -p mediaflow-tests --bench serve
//!   MEDIAFLOW_BENCH_REQUESTS=20 (per client)  MEDIAFLOW_BENCH_CLIENTS=32

use std::sync::Arc;
use std::time::{Duration, Instant};

use mediaflow_server::{create_token, Scope, Service, ServiceConfig};
use mediaflow_store::{RunFilter, RunStatus};
use mediaflow_tests::{Db, Harness};
use serde_json::json;

const NOOP3: &str = "name: noop3\nsteps:\n  a:\n    uses: text.template\n    with: { template: a }\n  b:\n    uses: text.template\n    needs: [a]\n    with: { template: b }\n  c:\n    uses: text.template\n    needs: [b]\n    with: { template: c }\n";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn bench(db: Db, clients: usize, per_client: usize) -> String {
    let h = Harness::new(db).await;
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("noop3.yaml"), NOOP3).expect("workflow");
    let engine = h.engine(mediaflow_engine::EngineOptions::default());
    let service = Service::new(ServiceConfig {
        engine,
        registry: h.registry.clone(),
        submitted_registry: h.registry.clone(),
        workflows_dir: Some(dir.path().to_owned()),
        plugin_health: Arc::new(|| json!({"processes": []})),
        run_schedules: false,
    });
    let (listener, addr) = mediaflow_server::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    tokio::spawn(mediaflow_server::serve_on(
        listener,
        service,
        std::future::pending(),
        Duration::from_secs(1),
    ));
    let token = create_token(&h.store, "bench", Scope::Run)
        .await
        .expect("token")
        .token;
    let url = format!("http://{addr}/api/v1/runs");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (url, token) = (url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut took = Vec::with_capacity(per_client);
            for _ in 0..per_client {
                let t = Instant::now();
                let r = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"workflow": "noop3"}))
                    .send()
                    .await
                    .expect("POST");
                assert_eq!(r.status().as_u16(), 201);
                took.push(t.elapsed());
            }
            took
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("client"));
    }
    let posting = started.elapsed();
    let total = clients * per_client;
    // Until every run has finished.
    loop {
        let running = h
            .store
            .list_runs(&RunFilter {
                status: Some(RunStatus::Running),
                limit: Some(1),
                ..Default::default()
            })
            .await
            .expect("runs");
        if running.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let finished = started.elapsed();
    let done = h
        .store
        .list_runs(&RunFilter {
            status: Some(RunStatus::Succeeded),
            limit: Some(100_000),
            ..Default::default()
        })
        .await
        .expect("runs")
        .len();
    assert_eq!(done, total, "every run succeeded");
    latencies.sort();
    let name = match h.db {
        Db::Sqlite => "SQLite",
        Db::Postgres => "PostgreSQL",
    };
    h.cleanup().await;
    format!(
        "| {name} | {total} | {:.0} | {:.1} | {:.1} | {:.0} |",
        total as f64 / posting.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        total as f64 / finished.as_secs_f64(),
    )
}

fn main() {
    let clients = env("MEDIAFLOW_BENCH_CLIENTS", 32);
    let per_client = env("MEDIAFLOW_BENCH_REQUESTS", 20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("POST /api/v1/runs, 3-step no-op workflow, {clients} concurrent clients × {per_client} requests");
    println!("| store | runs | POST/s | p50 ms | p99 ms | runs finished/s |");
    println!("|---|---|---|---|---|---|");
    for db in [Db::Sqlite, Db::Postgres] {
        println!("{}", rt.block_on(bench(db, clients, per_client)));
    }
}

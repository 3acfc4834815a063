//! `text.search`'s two ways of finding neighbours, side by side on the same collection:
//! the exact scan and the HNSW index (`hnsw_rs`), on 384-d vectors in topic clusters (the
//! shape of sentence embeddings), with the index's build time and its recall@10 against
//! the exact answer printed first.
//!
//! `cargo bench --profile dev --workspace --bench vectors`

use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mediaflow_engine::{normalised, Snapshot};
use mediaflow_tests::Lcg;

const DIMS: usize = 384;
const K: usize = 10;

/// `n` vectors around 2,000 topic centres (deterministic: [`Lcg`]).
fn clustered(n: usize, seed: u64) -> Vec<(String, Vec<f32>)> {
    let mut lcg = Lcg::new(seed);
    let centres: Vec<Vec<f32>> = (0..2000).map(|_| lcg.values(DIMS, -1.0, 1.0)).collect();
    (0..n)
        .map(|i| {
            let c = &centres[(i * 7919) % centres.len()];
            (
                format!("{i}"),
                c.iter()
                    .map(|x| x + 0.35 * lcg.uniform(-1.0, 1.0))
                    .collect(),
            )
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let queries: Vec<Vec<f32>> = clustered(200, 99)
        .into_iter()
        .map(|(_, v)| normalised(&v))
        .collect();
    let mut group = c.benchmark_group("vector_search");
    group.sample_size(20);
    for n in [20_000usize, 50_000] {
        let s = Snapshot::new(1, DIMS, clustered(n, 7));
        let t = Instant::now();
        s.build_index();
        let built = t.elapsed();
        let mut found = 0;
        for q in &queries {
            let exact: Vec<usize> = s.exact(q, K).into_iter().map(|h| h.0).collect();
            found += s
                .approximate(q, K)
                .iter()
                .filter(|h| exact.contains(&h.0))
                .count();
        }
        println!(
            "{n} vectors: HNSW built in {:.1} s, recall@{K} against exact {:.4}",
            built.as_secs_f64(),
            found as f64 / (queries.len() * K) as f64
        );
        let mut i = 0;
        group.bench_function(BenchmarkId::new("exact", n), |b| {
            b.iter(|| {
                i = (i + 1) % queries.len();
                s.exact(&queries[i], K)
            })
        });
        group.bench_function(BenchmarkId::new("approximate", n), |b| {
            b.iter(|| {
                i = (i + 1) % queries.len();
                s.approximate(&queries[i], K)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

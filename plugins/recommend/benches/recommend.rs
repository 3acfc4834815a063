//! Training time and ranking throughput of every model at about 100K events (MovieLens 100K
//! when `../shared` has it, else a synthetic newsroom of that size) and at about 1M events
//! (a synthetic newsroom with long-tailed readers and stories), side by side with the
//! `implicit` library's ALS training time on the same data (bench-only venv).
//!
//! `cargo bench --profile dev --workspace --bench recommend`

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use mediaflow_recommend::model::Reader;
use mediaflow_recommend::synth::{generate, SynthOptions};
use mediaflow_recommend::{Dataset, KindWeights, ModelKind, Recommender, Split, TrainConfig};

/// Ranks the first `n` users' top 20 (read items left out) and returns users per second.
fn throughput(model: &Recommender, n: usize) -> f64 {
    use rayon::prelude::*;
    let users: Vec<u32> = (0..model.users.len().min(n) as u32).collect();
    let started = Instant::now();
    let total: usize = users
        .par_iter()
        .map(|&u| {
            let history = &model.histories[u as usize];
            let seen: Vec<u32> = history.items().collect();
            let reader = Reader {
                user: Some(u),
                history,
            };
            model.rank(&reader, 20, &seen, true).best.len()
        })
        .sum();
    assert!(total > 0);
    users.len() as f64 / started.elapsed().as_secs_f64()
}

fn bench(name: &str, data: &Dataset) {
    println!(
        "\n{name}: {} users, {} items, {} events (one per user and item)",
        data.n_users(),
        data.n_items(),
        data.events.len()
    );
    println!(
        "{:<34} {:>12} {:>16}",
        "model", "train (s)", "rank (users/s)"
    );
    let config = TrainConfig::default();
    for kind in ModelKind::ALL {
        let c = TrainConfig {
            model: kind,
            ..config.clone()
        };
        let started = Instant::now();
        let model = Recommender::train(data, &c, &Default::default(), data.latest())
            .expect("training diverged");
        let train = started.elapsed().as_secs_f64();
        println!(
            "{:<34} {:>12.2} {:>16.0}",
            format!("mediaflow {kind}"),
            train,
            throughput(&model, 5000)
        );
    }
    let dir = tempfile::tempdir().expect("temp dir");
    Split {
        train: data.clone(),
        test: Vec::new(),
    }
    .export(dir.path())
    .expect("write the data for implicit");
    for row in common::implicit(dir.path(), &config.als, 20, true) {
        println!(
            "{:<34} {:>12.2} {:>16}",
            row["model"].as_str().unwrap_or("?"),
            row["train_seconds"].as_f64().unwrap_or(f64::NAN),
            "-"
        );
    }
}

fn main() {
    let threads = rayon::current_num_threads();
    println!(
        "rayon threads: {threads}; ALS: {:?}",
        TrainConfig::default().als
    );
    let small = match common::movielens_dir() {
        Some(dir) => ("MovieLens 100K", common::movielens(&dir)),
        None => {
            let (items, events) = generate(&SynthOptions {
                users: 1_000,
                items: 1_700,
                events: 100_000,
                days: 30,
                ..SynthOptions::default()
            });
            (
                "synthetic 100K",
                Dataset::new(&events, &items, &KindWeights::new()),
            )
        }
    };
    bench(small.0, &small.1);
    let started = Instant::now();
    let (items, events) = generate(&SynthOptions {
        users: 50_000,
        items: 20_000,
        events: 1_000_000,
        days: 60,
        ..SynthOptions::default()
    });
    let large = Dataset::new(&events, &items, &KindWeights::new());
    println!(
        "\n(generated {} events in {:.1} s)",
        events.len(),
        started.elapsed().as_secs_f64()
    );
    bench("synthetic newsroom, about 1M events", &large);
}

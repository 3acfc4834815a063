//! Offline evaluation on MovieLens 100K (`../shared/data/movielens-100k`; skipped with a
//! message where it is absent): every model's HR@10, NDCG@10, coverage and training time on
//! the leave-latest-out split, with the `implicit` library's ALS run on the very same split
//! and printed beside them.

mod common;

use mediaflow_recommend::{ModelKind, Split, TrainConfig};

#[test]
fn movielens_100k_every_model_against_implicit() {
    let Some(dir) = common::movielens_dir() else {
        eprintln!("skipped: ../shared/data/movielens-100k is not there");
        return;
    };
    let data = common::movielens(&dir);
    assert_eq!(
        (data.n_users(), data.n_items(), data.events.len()),
        (943, 1682, 100_000)
    );
    let split = Split::new(&data);
    assert_eq!(
        split.test.len(),
        943,
        "every MovieLens user has at least 20 ratings"
    );
    let configs: Vec<(String, TrainConfig)> = ModelKind::ALL
        .iter()
        .map(|&kind| {
            let config = TrainConfig {
                model: kind,
                ..TrainConfig::default()
            };
            (kind.name().to_owned(), config)
        })
        .collect();
    let report = split.report(&configs, &Default::default(), 10).unwrap();
    let splits = tempfile::tempdir().unwrap();
    split.export(splits.path()).unwrap();
    let reference = common::implicit(splits.path(), &TrainConfig::default().als, 10, false);
    println!("{}", report.table());
    for r in &reference {
        println!(
            "{:<28} {:>8.4} {:>8.4} {:>8.1}% {:>10.2} {:>12.0}",
            r["model"].as_str().unwrap_or("?"),
            r["hr"].as_f64().unwrap_or(0.0),
            r["ndcg"].as_f64().unwrap_or(0.0),
            r["coverage"].as_f64().unwrap_or(0.0) * 100.0,
            r["train_seconds"].as_f64().unwrap_or(0.0),
            r["users_per_second"].as_f64().unwrap_or(0.0)
        );
    }
    let row = |name: &str| report.rows.iter().find(|r| r.model == name).unwrap();
    let best = report
        .rows
        .iter()
        .max_by(|a, b| a.ndcg.total_cmp(&b.ndcg))
        .unwrap();
    for baseline in ["popularity", "itemknn"] {
        let b = row(baseline);
        assert!(
            best.hr > b.hr && best.ndcg > b.ndcg,
            "the best model ({}) must beat {baseline} on HR@10 and NDCG@10",
            best.model
        );
    }
    // Every model's figures are real rankings, not empty lists.
    for r in &report.rows {
        assert!(r.hr > 0.0 && r.coverage > 0.0, "{} found nothing", r.model);
    }
    // The goal: at or above `implicit`'s ALS, with our settings and with its own.
    for r in &reference {
        let (ihr, indcg) = (r["hr"].as_f64().unwrap(), r["ndcg"].as_f64().unwrap());
        assert!(
            best.hr >= ihr && best.ndcg >= indcg,
            "{} (HR@10 {:.4}, NDCG@10 {:.4}) is below {} (HR@10 {ihr:.4}, NDCG@10 {indcg:.4})",
            best.model,
            best.hr,
            best.ndcg,
            r["model"]
        );
    }
}

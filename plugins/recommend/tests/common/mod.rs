//! What the MovieLens test and the benchmark share: finding MovieLens 100K beside the
//! repository, and running the `implicit` library on an exported split.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use mediaflow_recommend::import::{read_events, read_items, EventOptions, Layout};
use mediaflow_recommend::model::AlsParams;
use mediaflow_recommend::{Dataset, KindWeights};
use serde_json::Value;

/// `../shared/data/movielens-100k` beside the repository, if it is there.
pub fn movielens_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/movielens-100k");
    dir.join("u.data").is_file().then_some(dir)
}

/// MovieLens 100K as a dataset (ratings as weights), with its films as items.
pub fn movielens(dir: &Path) -> Dataset {
    let events = read_events(
        &dir.join("u.data"),
        &EventOptions {
            layout: Layout::MovielensData,
            ..EventOptions::default()
        },
        &mut |_| {},
    )
    .expect("u.data reads");
    assert!(events.skipped.is_empty(), "{:?}", &events.skipped[..1]);
    let items = read_items(
        &dir.join("u.item"),
        Layout::MovielensItems,
        &Default::default(),
    )
    .expect("u.item reads");
    Dataset::new(&events.rows, &items.rows, &KindWeights::new())
}

/// Runs `reference/implicit_als.py` on the split in `dir` with `als`'s settings.
pub fn implicit(dir: &Path, als: &AlsParams, k: usize, train_only: bool) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/implicit_als.py");
    let mut cmd = Command::new(mediaflow_tests::reference_python());
    cmd.arg(&script)
        .arg(dir)
        .args(["--factors", &als.factors.to_string()])
        .args(["--regularization", &als.regularization.to_string()])
        .args(["--alpha", &als.alpha.to_string()])
        .args(["--iterations", &als.iterations.to_string()])
        .args(["--k", &k.to_string()]);
    if train_only {
        cmd.arg("--train-only");
    }
    let out = cmd.output().expect("python runs");
    assert!(
        out.status.success(),
        "implicit_als.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON from implicit_als.py");
    v["rows"].as_array().cloned().unwrap_or_default()
}

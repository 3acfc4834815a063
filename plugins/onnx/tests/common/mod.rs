//! Shared by the parity tests and the benchmark: the model store, the Python reference
//! (`tests/reference.py` in the venv of `scripts/reference-venv.sh`), padded token batches.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub mod run;

use mediaflow_onnx::embed::Window;
use serde_json::Value;

pub fn store() -> mediaflow_models::ModelStore {
    mediaflow_models::ModelStore::open(mediaflow_models::ModelStore::env_dir()).unwrap()
}

/// The installed file of a catalog model.
pub fn model(name: &str) -> PathBuf {
    store().resolve(name).unwrap_or_else(|e| {
        panic!(
            "{e}: {} (./scripts/test.sh pulls it)",
            e.help().unwrap_or_default()
        )
    })
}

/// Runs one job of `tests/reference.py` and returns its JSON answer.
pub fn reference(job: Value) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference.py");
    let mut child = Command::new(mediaflow_tests::reference_python())
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(job.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "reference.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from reference.py")
}

/// Token ids padded with 0 to the longest window, and the attention mask.
pub fn padded(windows: &[Window]) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let s = windows.iter().map(|w| w.ids.len()).max().unwrap_or(0);
    let ids = windows
        .iter()
        .map(|w| {
            let mut v = w.ids.clone();
            v.resize(s, 0);
            v
        })
        .collect();
    let mask = windows
        .iter()
        .map(|w| (0..s).map(|j| u32::from(j < w.ids.len())).collect())
        .collect();
    (ids, mask)
}

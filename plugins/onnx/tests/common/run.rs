//! Running workflows on the real `mediaflow-onnx` process and the engine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mediaflow_process_host::{describe, Supervisor};
use mediaflow_store::StepStatus;
use mediaflow_tests::{Db, Harness};
use serde_json::Value;

pub fn models_dir() -> PathBuf {
    mediaflow_models::ModelStore::env_dir()
}

pub fn require_models(names: &[&str]) {
    let store = mediaflow_models::ModelStore::open(models_dir()).unwrap();
    for name in names {
        if let Err(e) = store.resolve(name) {
            panic!(
                "{e}: {} (or run ./scripts/test.sh, which pulls it)",
                e.help().unwrap_or_default()
            );
        }
    }
}

/// The sample photos; `MEDIAFLOW_SAMPLES` as `scripts/sample-images.sh` uses it.
pub fn samples() -> PathBuf {
    let base = std::env::var_os("MEDIAFLOW_SAMPLES")
        .map(PathBuf::from)
        .or_else(|| mediaflow_models::default_data_dir().map(|d| d.join("samples")))
        .expect("a data dir");
    let dir = base.join("images");
    assert!(
        dir.join(".complete").is_file(),
        "no sample images in {}: run ./scripts/sample-images.sh (./scripts/test.sh does)",
        dir.display()
    );
    dir
}

/// A harness on `db` with the real `mediaflow-onnx` process registered.
pub async fn harness(db: Db) -> (Harness, Arc<Supervisor>) {
    let mut h = Harness::new(db).await;
    let sup = register(&mut h, Path::new(env!("CARGO_BIN_EXE_mediaflow-onnx"))).await;
    (h, sup)
}

/// Registers the plugin process `exe` on `h`, with the test models directory.
async fn register(h: &mut Harness, exe: &Path) -> Arc<Supervisor> {
    let binary = describe(exe).await.unwrap_or_else(|e| {
        panic!(
            "{}: {e} (`cargo test --workspace` builds it; ./scripts/test.sh does)",
            exe.display()
        )
    });
    let sup = Supervisor::new(
        binary,
        vec![(
            "MEDIAFLOW_MODELS".into(),
            models_dir().display().to_string(),
        )],
    );
    h.register(sup.plugins());
    sup
}

pub async fn store(h: &Harness, path: &Path) -> Value {
    h.artifacts
        .store_file(path, None)
        .await
        .expect("store file")
        .to_value()
}

pub fn error_code(r: &mediaflow_engine::RunReport, step: &str) -> String {
    let s = &r.steps[step];
    assert_eq!(s.status, StepStatus::Failed, "{step}: {s:?}");
    s.error.as_ref().expect("an error")["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

pub fn error_message(r: &mediaflow_engine::RunReport, step: &str) -> String {
    r.steps[step].error.as_ref().expect("an error")["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Registers the real `mediaflow-llm` process (built beside `mediaflow-onnx` by
/// `cargo test --workspace`), so steps reach `llm.generate` through the engine.
pub async fn register_llm(h: &mut Harness) -> Arc<Supervisor> {
    let exe = Path::new(env!("CARGO_BIN_EXE_mediaflow-onnx")).with_file_name("mediaflow-llm");
    register(h, &exe).await
}

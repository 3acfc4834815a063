//! WebAssembly plugins built from source for the tests: `tests/wasm` (hostile, capable,
//! trivial) and `plugins/wasm` (the examples), compiled once per test process.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mediaflow_wasm_host::build::{build_component, component_path};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// Where guest builds go: beside the host's target directory, so a warm CI cache keeps them.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d).join("wasm-guests"),
        None => repo_root().join("target").join("wasm-guests"),
    }
}

/// The component of a crate in `tests/wasm` or `plugins/wasm` (`hostile`, `ap-headline`…).
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        for workspace in ["tests/wasm", "plugins/wasm"] {
            let manifest = repo_root().join(workspace).join("Cargo.toml");
            if let Err(e) = build_component(&manifest, &target_dir()) {
                panic!("{e}");
            }
        }
    });
    let path = component_path(&target_dir(), name);
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

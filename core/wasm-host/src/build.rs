//! Compiling a plugin crate into a component with cargo, for `mediaflow plugin build` and
//! the tests that build the guests from source.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target plugins are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// Why cargo did not build a component.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot run cargo: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("building {manifest} for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`):\n{stderr}")]
    Failed { manifest: String, stderr: String },
}

/// Runs `cargo build --release --target wasm32-wasip2 --manifest-path MANIFEST
/// --target-dir TARGET_DIR`, with the `RUSTFLAGS` meant for the host build removed. Cargo's
/// messages are passed on to this process's stderr as they come and kept for the error.
/// The cargo binary is `$CARGO` (set when running under cargo), else `cargo` on `PATH`.
pub fn build_component(manifest: &Path, target_dir: &Path) -> Result<(), BuildError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(cargo)
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(BuildError::Spawn)?;
    let mut stderr = String::new();
    if let Some(pipe) = child.stderr.take() {
        // A read error only ends the echo; cargo's exit status still decides.
        for line in BufReader::new(pipe).split(b'\n').map_while(Result::ok) {
            let line = String::from_utf8_lossy(&line);
            eprintln!("{line}");
            stderr.push_str(&line);
            stderr.push('\n');
        }
    }
    let status = child.wait().map_err(BuildError::Spawn)?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::Failed {
            manifest: manifest.display().to_string(),
            stderr,
        })
    }
}

/// Where [`build_component`] leaves the component of crate `package` (`ap-headline` →
/// `TARGET_DIR/wasm32-wasip2/release/ap_headline.wasm`).
pub fn component_path(target_dir: &Path, package: &str) -> PathBuf {
    target_dir
        .join(TARGET)
        .join("release")
        .join(format!("{}.wasm", package.replace('-', "_")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_build_carries_cargos_message() {
        let dir = std::env::temp_dir().join("mediaflow-build-test-missing");
        let manifest = dir.join("Cargo.toml");
        match build_component(&manifest, &dir.join("target")) {
            Err(BuildError::Failed {
                manifest: m,
                stderr,
            }) => {
                assert_eq!(m, manifest.display().to_string());
                assert!(stderr.contains("Cargo.toml"), "{stderr}");
            }
            other => panic!("expected a failed build, got {other:?}"),
        }
        assert_eq!(
            component_path(Path::new("/t"), "ap-headline"),
            Path::new("/t/wasm32-wasip2/release/ap_headline.wasm")
        );
    }
}

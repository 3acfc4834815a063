//! Compiled components, cached on disk by the sha256 of their bytes.
//!
//! A cache file is named `<sha256>-<engine>.cwasm`, where `<engine>` hashes wasmtime's
//! compatibility fingerprint (version, target, settings such as fuel), so a new wasmtime or
//! other settings never load stale code. Files are written to a temporary name and renamed.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use wasmtime::component::Component;

use crate::runtime::Shared;
use crate::WasmError;

fn engine_tag(shared: &Shared) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    shared.engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

fn cache_path(shared: &Shared, sha: &str) -> Option<PathBuf> {
    let dir = shared.config.cache_dir.as_ref()?;
    Some(dir.join(format!("{sha}-{}.cwasm", engine_tag(shared))))
}

/// Checks the header, then loads the compiled form from the cache or compiles (and caches).
pub(crate) fn compile(
    shared: &Shared,
    bytes: &[u8],
    sha: &str,
    display: &str,
) -> Result<Component, WasmError> {
    check_header(bytes, display)?;
    let cached = cache_path(shared, sha);
    if let Some(path) = cached.as_ref().filter(|p| p.is_file()) {
        // The file is read into memory rather than mapped: a mapped file that someone
        // truncates or rewrites later would crash the process (SIGBUS) when its code runs.
        if let Ok(data) = std::fs::read(path) {
            // SAFETY: the file was written by `Component::serialize` of an engine with the
            // same compatibility hash (it is in the name), in mediaflow's own cache
            // directory. wasmtime still checks its header and refuses a mismatch; a corrupt
            // file falls through to compiling again.
            if let Ok(c) = unsafe { Component::deserialize(&shared.engine, &data) } {
                return Ok(c);
            }
        }
    }
    let component =
        Component::new(&shared.engine, bytes).map_err(|e| WasmError::NotAComponent {
            path: display.to_owned(),
            reason: format!("{e:#}"),
        })?;
    if let Some(path) = cached {
        // The cache is an optimisation: failing to write it is not an error.
        if let Ok(data) = component.serialize() {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
            if std::fs::write(&tmp, data).is_ok() && std::fs::rename(&tmp, &path).is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
        }
    }
    Ok(component)
}

/// Names the common mistakes before wasmtime's parser does: not wasm at all, or a core
/// module (built for `wasm32-wasip1` / `wasm32-unknown-unknown`) instead of a component.
fn check_header(bytes: &[u8], display: &str) -> Result<(), WasmError> {
    let reason = if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        "the file does not start with the WebAssembly magic bytes"
    } else if bytes[4..8] == [1, 0, 0, 0] {
        "it is a core WebAssembly module; plugins are components: build for `wasm32-wasip2` \
         (`mediaflow plugin build` does)"
    } else {
        return Ok(());
    };
    Err(WasmError::NotAComponent {
        path: display.to_owned(),
        reason: reason.to_owned(),
    })
}

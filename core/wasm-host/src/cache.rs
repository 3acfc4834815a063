//! Compiled components, cached on disk by the sha256 of their bytes.
//!
//! A cache file is named `<sha256>-<engine>.cwasm`, where `<engine>` hashes wasmtime's
//! compatibility fingerprint (version, target, settings such as fuel), so a new wasmtime or
//! other settings never load stale code. Files are written to a temporary name and renamed.
//!
//! Deserializing a compiled component runs its machine code unchecked, so the cache only
//! loads files it wrote itself: each starts with an HMAC-SHA256 tag over the component's
//! sha256, the engine tag and the compiled bytes, keyed by `mac.key` (32 random bytes,
//! 0600, made on first use). A file planted by someone else, or one component's file
//! copied under another's name, fails the check and is compiled afresh.

use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
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

const TAG_LEN: usize = 32;

/// The cache's key: read from `mac.key`, made (0600, atomically) if there is none.
/// `None` when neither works: then nothing is cached.
fn mac_key(dir: &Path) -> Option<[u8; 32]> {
    let path = dir.join("mac.key");
    let read = |path: &Path| -> Option<[u8; 32]> {
        let bytes = std::fs::read(path).ok()?;
        bytes.try_into().ok()
    };
    if let Some(key) = read(&path) {
        return Some(key);
    }
    std::fs::create_dir_all(dir).ok()?;
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .ok()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut f) => {
            use std::io::Write;
            f.write_all(&key).ok()?;
            Some(key)
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(&path),
        Err(_) => None,
    }
}

/// The MAC of one cache file: it binds the compiled bytes to the component and engine.
fn mac(key: &[u8; 32], sha: &str, engine: &str, data: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    for part in [sha.as_bytes(), b"\0", engine.as_bytes(), b"\0", data] {
        mac.update(part);
    }
    Some(mac)
}

fn tag(key: &[u8; 32], sha: &str, engine: &str, data: &[u8]) -> Option<[u8; TAG_LEN]> {
    Some(mac(key, sha, engine, data)?.finalize().into_bytes().into())
}

/// The compiled bytes of a cache file, if its tag shows this cache wrote it for `sha`.
fn verified<'f>(key: &[u8; 32], sha: &str, engine: &str, file: &'f [u8]) -> Option<&'f [u8]> {
    let (stored, data) = file.split_at_checked(TAG_LEN)?;
    mac(key, sha, engine, data)?.verify_slice(stored).ok()?;
    Some(data)
}

/// Checks the header, then loads the compiled form from the cache or compiles (and caches).
pub(crate) fn compile(
    shared: &Shared,
    bytes: &[u8],
    sha: &str,
    display: &str,
) -> Result<Component, WasmError> {
    check_header(bytes, display)?;
    let engine = engine_tag(shared);
    let cached = cache_path(shared, sha).and_then(|path| {
        let key = mac_key(path.parent()?)?;
        Some((path, key))
    });
    if let Some((path, key)) = cached.as_ref().filter(|(p, _)| p.is_file()) {
        // The file is read into memory rather than mapped: a mapped file that someone
        // truncates or rewrites later would crash the process (SIGBUS) when its code runs.
        let file = std::fs::read(path).ok();
        if let Some(data) = file
            .as_deref()
            .and_then(|file| verified(key, sha, &engine, file))
        {
            // SAFETY: the tag proves this cache wrote these bytes with
            // `Component::serialize` for this component and an engine with the same
            // compatibility hash; wasmtime still checks its header and refuses a mismatch.
            if let Ok(c) = unsafe { Component::deserialize(&shared.engine, data) } {
                return Ok(c);
            }
        }
    }
    let component =
        Component::new(&shared.engine, bytes).map_err(|e| WasmError::NotAComponent {
            path: display.to_owned(),
            reason: format!("{e:#}"),
        })?;
    if let Some((path, key)) = cached {
        // The cache is an optimisation: failing to write it is not an error.
        if let Some((data, tag)) = component
            .serialize()
            .ok()
            .and_then(|data| tag(&key, sha, &engine, &data).map(|t| (data, t)))
        {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
            let mut file = tag.to_vec();
            file.extend_from_slice(&data);
            if std::fs::write(&tmp, file).is_ok() && std::fs::rename(&tmp, &path).is_err() {
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

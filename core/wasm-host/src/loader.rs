//! `uses: wasm:path/to/plugin.wasm` (optionally `@sha256:HEX`) in workflows.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mediaflow_plugin_api::{LoadError, Plugin, PluginLoader};

use crate::{WasmError, WasmRuntime};

/// Resolves `wasm:` references: relative to the workflow file, then in the plugin
/// directories of the runtime's [`WasmConfig`](crate::WasmConfig).
pub struct WasmLoader {
    pub runtime: WasmRuntime,
}

/// Splits `path@sha256:HEX` into the path and the pin.
pub fn parse_reference(reference: &str) -> (&str, Option<&str>) {
    match reference.rsplit_once("@sha256:") {
        Some((path, pin)) => (path, Some(pin)),
        None => (reference, None),
    }
}

impl WasmLoader {
    fn candidates(&self, path: &str, base: &Path) -> Vec<PathBuf> {
        let p = Path::new(path);
        if p.is_absolute() {
            return vec![p.to_owned()];
        }
        std::iter::once(base.join(p))
            .chain(self.runtime.config().plugin_dirs.iter().map(|d| d.join(p)))
            .collect()
    }
}

impl PluginLoader for WasmLoader {
    fn load(&self, reference: &str, base: &Path) -> Result<Arc<dyn Plugin>, LoadError> {
        let (path, pin) = parse_reference(reference);
        if let Some(pin) = pin {
            if pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(LoadError {
                    message: format!("`{pin}` is not a sha256"),
                    label: "bad pin".to_owned(),
                    help: Some(
                        "pin with 64 hex digits: `wasm:plugin.wasm@sha256:…` (`sha256sum plugin.wasm` prints them)"
                            .to_owned(),
                    ),
                });
            }
        }
        let candidates = self.candidates(path, base);
        let Some(found) = candidates.iter().find(|c| c.is_file()) else {
            let looked: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
            return Err(LoadError {
                message: format!("cannot find WebAssembly plugin `{path}`"),
                label: "no such file".to_owned(),
                help: Some(format!(
                    "looked at {}; build a plugin with `mediaflow plugin build`",
                    looked.join(", ")
                )),
            });
        };
        match self.runtime.load_file(found, pin) {
            Ok(p) => Ok(p as Arc<dyn Plugin>),
            Err(e) => Err(load_error(e)),
        }
    }
}

fn load_error(e: WasmError) -> LoadError {
    let (label, help) = match &e {
        WasmError::Checksum { .. } => (
            "checksum mismatch",
            Some("the file changed since the workflow pinned it; check where it came from, then update the pin"),
        ),
        WasmError::NotAComponent { .. } => ("not a component", None),
        WasmError::Incompatible { .. } => ("incompatible plugin", None),
        WasmError::Describe { .. } => ("`describe` failed", Some("this is a bug in the plugin; report it to its author")),
        WasmError::Io { .. } => ("cannot read", None),
        WasmError::Engine(_) => ("engine error", None),
    };
    LoadError {
        message: e.to_string(),
        label: label.to_owned(),
        help: help.map(str::to_owned),
    }
}

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

/// A pin must be 64 hex digits.
fn check_pin(pin: Option<&str>) -> Result<(), LoadError> {
    match pin {
        Some(pin) if pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Err(LoadError {
                message: format!("`{pin}` is not a sha256"),
                label: "bad pin".to_owned(),
                help: Some(
                    "pin with 64 hex digits: `wasm:plugin.wasm@sha256:…` (`sha256sum plugin.wasm` prints them)"
                        .to_owned(),
                ),
            })
        }
        _ => Ok(()),
    }
}

impl PluginLoader for WasmLoader {
    fn load(&self, reference: &str, base: &Path) -> Result<Arc<dyn Plugin>, LoadError> {
        let (path, pin) = parse_reference(reference);
        check_pin(pin)?;
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

/// Resolves `wasm:` references in workflow text that came from outside (`mediaflow
/// serve`'s API): only a relative path, without `..`, to a component inside one of the
/// plugin directories. Absolute paths, paths relative to the workflow and symbolic links
/// out of a plugin directory are refused, so a submitted workflow cannot run an arbitrary
/// file of the server's as a plugin.
pub struct ConfinedWasmLoader {
    pub runtime: WasmRuntime,
}

impl PluginLoader for ConfinedWasmLoader {
    fn load(&self, reference: &str, _base: &Path) -> Result<Arc<dyn Plugin>, LoadError> {
        let (path, pin) = parse_reference(reference);
        check_pin(pin)?;
        let p = Path::new(path);
        let plain = !p.as_os_str().is_empty()
            && p.components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        let refused = |why: &str| LoadError {
            message: format!("`{path}` is not allowed here: {why}"),
            label: "outside the plugin directories".to_owned(),
            help: Some(
                "a workflow submitted to the service may only use components installed in its \
                 plugin directories, by a path relative to one (`wasm:NAME.wasm`)"
                    .to_owned(),
            ),
        };
        if !plain {
            return Err(refused(
                "only a relative path inside a plugin directory is allowed",
            ));
        }
        for dir in &self.runtime.config().plugin_dirs {
            let candidate = dir.join(p);
            let (Ok(real), Ok(root)) = (candidate.canonicalize(), dir.canonicalize()) else {
                continue;
            };
            if !real.is_file() {
                continue;
            }
            if !real.starts_with(&root) {
                return Err(refused("it leads out of the plugin directory"));
            }
            return match self.runtime.load_file(&real, pin) {
                Ok(p) => Ok(p as Arc<dyn Plugin>),
                Err(e) => Err(load_error(e)),
            };
        }
        Err(LoadError {
            message: format!("cannot find WebAssembly plugin `{path}` in the plugin directories"),
            label: "no such plugin".to_owned(),
            help: Some(format!(
                "installed components live in {}",
                self.runtime
                    .config()
                    .plugin_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        })
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

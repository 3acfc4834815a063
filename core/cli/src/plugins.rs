//! Which plugins this `mediaflow` has: built-ins, plugin processes found on disk, and
//! WebAssembly components in the plugin directories. Loaded only by the commands that
//! need plugins.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mediaflow_engine::PluginLlm;
use mediaflow_plugin_api::{LlmProvider, Registry};
use mediaflow_process_host::{describe, discover, search_dirs, Supervisor};
use mediaflow_wasm_host::{ConfinedWasmLoader, WasmConfig, WasmLoader, WasmRuntime};

/// The registry and the plugin processes behind it (shut down on exit).
pub struct Plugins {
    pub registry: Registry,
    pub supervisors: Vec<Arc<Supervisor>>,
    /// Plugins that were found but could not be used, and why.
    pub broken: Vec<String>,
    /// The WebAssembly runtime, if it started.
    pub wasm: Option<WasmRuntime>,
}

/// Where `*.wasm` plugins are registered from: `DATA_DIR/plugins`, then each directory of
/// `MEDIAFLOW_PLUGINS_DIR`.
pub fn wasm_dirs(data_dir: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![data_dir.join("plugins")];
    if let Some(v) = std::env::var_os("MEDIAFLOW_PLUGINS_DIR") {
        dirs.extend(std::env::split_paths(&v));
    }
    dirs
}

impl Plugins {
    pub async fn load(models_dir: &Path, data_dir: &Path) -> Plugins {
        let mut registry = mediaflow_builtin::registry();
        // The recommender's steps run in this process, on the run database; their names
        // are distinct from the built-ins'.
        let _ = registry.add(mediaflow_recommend::plugins(), "built-in");
        // So do the web inputs (http.request, feed.read).
        let _ = registry.add(mediaflow_http::plugins(), "built-in");
        let env = vec![
            (
                "MEDIAFLOW_MODELS".to_owned(),
                models_dir.display().to_string(),
            ),
            (
                "MEDIAFLOW_DATA_DIR".to_owned(),
                data_dir.display().to_string(),
            ),
        ];
        let mut supervisors = Vec::new();
        let mut broken = Vec::new();
        let mut wasm = None;
        for exe in discover(&search_dirs()) {
            match describe(&exe).await {
                Ok(binary) => {
                    let sup = Supervisor::new(binary, env.clone());
                    match registry.add(sup.plugins(), &exe.display().to_string()) {
                        Ok(()) => supervisors.push(sup),
                        Err(e) => broken.push(format!("{e}; the second is ignored")),
                    }
                }
                Err(e) => broken.push(e.to_string()),
            }
        }
        // WebAssembly plugins: `uses: wasm:FILE` anywhere, and every `*.wasm` in the plugin
        // directories under the name it declares.
        let plugin_dirs = wasm_dirs(data_dir);
        let config = WasmConfig {
            cache_dir: Some(data_dir.join("wasm-cache")),
            plugin_dirs: plugin_dirs.clone(),
            ..WasmConfig::default()
        }
        .with_env();
        match WasmRuntime::new(config) {
            Ok(runtime) => {
                for dir in &plugin_dirs {
                    for (path, loaded) in runtime.load_dir(dir) {
                        let added = match loaded {
                            Ok(p) => registry
                                .add([p as _], &path.display().to_string())
                                .map_err(|e| format!("{e}; the second is ignored")),
                            Err(e) => Err(e.to_string()),
                        };
                        if let Err(e) = added {
                            broken.push(e);
                        }
                    }
                }
                registry.add_loader(
                    "wasm",
                    Arc::new(WasmLoader {
                        runtime: runtime.clone(),
                    }),
                );
                wasm = Some(runtime);
            }
            Err(e) => broken.push(e.to_string()),
        }
        Plugins {
            registry,
            supervisors,
            broken,
            wasm,
        }
    }

    /// The text generation steps and sandboxed plugins reach: `llm.generate`, if installed.
    pub fn llm(&self) -> Option<Arc<dyn LlmProvider>> {
        let plugin = self.registry.get("llm.generate")?.clone();
        PluginLlm::new(plugin)
            .ok()
            .map(|p| Arc::new(p) as Arc<dyn LlmProvider>)
    }

    /// The registry for workflow text from outside (`serve`'s API): `uses: wasm:` may only
    /// name components in the plugin directories.
    pub fn confined_registry(&self) -> Registry {
        let mut r = self.registry.clone();
        if let Some(runtime) = &self.wasm {
            r.add_loader(
                "wasm",
                Arc::new(ConfinedWasmLoader {
                    runtime: runtime.clone(),
                }),
            );
        }
        r
    }

    /// What `/health` reports of the plugin processes (starts so far) and of the plugins
    /// that could not be used.
    pub fn health(&self) -> Arc<dyn Fn() -> serde_json::Value + Send + Sync> {
        let supervisors = self.supervisors.clone();
        let broken = self.broken.clone();
        Arc::new(move || {
            let processes: Vec<serde_json::Value> = supervisors
                .iter()
                .map(|s| {
                    let b = s.binary();
                    serde_json::json!({
                        "name": b.name,
                        "version": b.version,
                        "path": b.path.display().to_string(),
                        "plugins": b.descriptors.iter().map(|d| d.name.clone()).collect::<Vec<_>>(),
                        "starts": s.starts(),
                    })
                })
                .collect();
            serde_json::json!({"processes": processes, "broken": broken})
        })
    }

    pub async fn shutdown(&self) {
        for s in &self.supervisors {
            s.shutdown().await;
        }
    }
}

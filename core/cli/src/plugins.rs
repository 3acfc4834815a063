//! Which plugins this `mediaflow` has: built-ins and plugin processes found on disk.

use std::path::Path;
use std::sync::Arc;

use mediaflow_plugin_api::Plugin;
use mediaflow_process_host::{describe, discover, search_dirs, Supervisor};
use mediaflow_wasm_host::{WasmConfig, WasmLoader, WasmRuntime};
use mediaflow_workflow::Registry;

/// The registry and the plugin processes behind it (shut down on exit).
pub struct Plugins {
    pub registry: Registry,
    pub supervisors: Vec<Arc<Supervisor>>,
    /// Plugin name → where it comes from (`built-in` or the executable).
    pub origins: Vec<(String, String)>,
    /// Executables that were found but could not be used.
    pub broken: Vec<String>,
}

impl Plugins {
    pub async fn load(models_dir: &Path, data_dir: &Path) -> Plugins {
        let mut registry = Registry::new();
        let mut origins = Vec::new();
        for p in mediaflow_builtin::plugins() {
            origins.push((p.descriptor().name.clone(), "built-in".to_owned()));
            registry.register(p);
        }
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
        for exe in discover(&search_dirs()) {
            match describe(&exe).await {
                Ok(binary) => {
                    let sup = Supervisor::new(binary, env.clone());
                    for p in sup.plugins() {
                        origins.push((p.descriptor().name.clone(), exe.display().to_string()));
                        registry.register(p);
                    }
                    supervisors.push(sup);
                }
                Err(e) => broken.push(e.to_string()),
            }
        }
        // WebAssembly plugins: `uses: wasm:FILE` anywhere, and every `*.wasm` in the plugin
        // directories under the name it declares.
        let mut plugin_dirs = vec![data_dir.join("plugins")];
        if let Some(v) = std::env::var_os("MEDIAFLOW_PLUGINS_DIR") {
            plugin_dirs.extend(std::env::split_paths(&v));
        }
        let config = WasmConfig {
            cache_dir: Some(data_dir.join("wasm-cache")),
            plugin_dirs: plugin_dirs.clone(),
            ..WasmConfig::default()
        }
        .with_env();
        match WasmRuntime::new(config, registry.get("llm.generate").cloned()) {
            Ok(runtime) => {
                for dir in &plugin_dirs {
                    for (path, loaded) in runtime.load_dir(dir) {
                        match loaded {
                            Ok(p) => {
                                origins.push((
                                    p.descriptor().name.clone(),
                                    path.display().to_string(),
                                ));
                                registry.register(p);
                            }
                            Err(e) => broken.push(e.to_string()),
                        }
                    }
                }
                registry.add_loader("wasm", Arc::new(WasmLoader { runtime }));
            }
            Err(e) => broken.push(e.to_string()),
        }
        Plugins {
            registry,
            supervisors,
            origins,
            broken,
        }
    }

    pub async fn shutdown(&self) {
        for s in &self.supervisors {
            s.shutdown().await;
        }
    }
}

//! Loaded models, shared by every call and kept until the memory budget needs the room.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use mediaflow_plugin_api::PluginError;

struct Entry {
    path: PathBuf,
    model: Arc<LlamaModel>,
    bytes: u64,
    used: Instant,
}

/// Models by file, least recently used first out when over `budget` bytes.
pub struct ModelCache {
    budget: u64,
    entries: Mutex<Vec<Entry>>,
    /// Loading is serialised: two calls for the same new model load it once.
    loading: tokio::sync::Mutex<()>,
}

impl ModelCache {
    pub fn new(budget: u64) -> Self {
        ModelCache {
            budget,
            entries: Mutex::new(Vec::new()),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    fn lookup(&self, path: &Path) -> Option<Arc<LlamaModel>> {
        let mut entries = self.entries.lock().ok()?;
        let e = entries.iter_mut().find(|e| e.path == path)?;
        e.used = Instant::now();
        Some(e.model.clone())
    }

    pub async fn get(
        &self,
        backend: &Arc<LlamaBackend>,
        path: &Path,
    ) -> Result<Arc<LlamaModel>, PluginError> {
        if let Some(m) = self.lookup(path) {
            return Ok(m);
        }
        let _loading = self.loading.lock().await;
        if let Some(m) = self.lookup(path) {
            return Ok(m);
        }
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        self.make_room(bytes);
        let backend = backend.clone();
        let p = path.to_path_buf();
        let model = tokio::task::spawn_blocking(move || LlamaModel::load_from_file(&backend, &p, &LlamaModelParams::default()))
            .await
            .map_err(|e| PluginError::new("model_load", format!("loading {} died: {e}", path.display())).retryable())?
            .map_err(|e| {
                PluginError::new("model_load", format!("cannot load model {}: {e}", path.display()))
                    .with_help("the file may be truncated or not a GGUF model; `mediaflow models verify` checks pulled models")
            })?;
        let model = Arc::new(model);
        if let Ok(mut entries) = self.entries.lock() {
            entries.push(Entry {
                path: path.to_path_buf(),
                model: model.clone(),
                bytes,
                used: Instant::now(),
            });
        }
        Ok(model)
    }

    /// Unloads idle models, oldest first, until `incoming` more bytes fit the budget.
    fn make_room(&self, incoming: u64) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        loop {
            let total: u64 = entries.iter().map(|e| e.bytes).sum();
            if total + incoming <= self.budget {
                return;
            }
            let idle = entries
                .iter()
                .enumerate()
                .filter(|(_, e)| Arc::strong_count(&e.model) == 1)
                .min_by_key(|(_, e)| e.used)
                .map(|(i, _)| i);
            match idle {
                Some(i) => {
                    entries.remove(i);
                }
                None => return,
            }
        }
    }
}

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use mediaflow_plugin_api::{Descriptor, Plugin};

/// Loads plugins named by reference in `uses:`, e.g. `uses: wasm:plugins/tagger.wasm`.
pub trait PluginLoader: Send + Sync {
    /// `reference` is what follows `scheme:`; relative paths are relative to `base`, the
    /// workflow file's directory.
    fn load(&self, reference: &str, base: &Path) -> Result<Arc<dyn Plugin>, LoadError>;
}

/// Why a plugin reference could not be loaded; shown at the `uses:` line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct LoadError {
    pub message: String,
    /// Short text under the caret.
    pub label: String,
    pub help: Option<String>,
}

/// The plugins a workflow may use, by name.
#[derive(Clone, Default)]
pub struct Registry {
    plugins: BTreeMap<String, Arc<dyn Plugin>>,
    loaders: BTreeMap<String, Arc<dyn PluginLoader>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.plugins.keys()).finish()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a plugin; a later plugin of the same name replaces an earlier one.
    pub fn register(&mut self, plugin: Arc<dyn Plugin>) -> &mut Self {
        self.plugins
            .insert(plugin.descriptor().name.clone(), plugin);
        self
    }

    /// Adds a plugin under a name other than its own (a `uses:` reference).
    pub fn register_as(&mut self, name: &str, plugin: Arc<dyn Plugin>) -> &mut Self {
        self.plugins.insert(name.to_owned(), plugin);
        self
    }

    pub fn with(mut self, plugin: impl Plugin) -> Self {
        self.register(Arc::new(plugin));
        self
    }

    /// Handles `uses: SCHEME:REFERENCE` with `loader`.
    pub fn add_loader(&mut self, scheme: &str, loader: Arc<dyn PluginLoader>) -> &mut Self {
        self.loaders.insert(scheme.to_owned(), loader);
        self
    }

    /// The loader for a `uses:` value of the form `scheme:reference`, if it has one.
    pub fn loader_for<'u>(&self, uses: &'u str) -> Option<(&Arc<dyn PluginLoader>, &'u str)> {
        let (scheme, reference) = uses.split_once(':')?;
        self.loaders.get(scheme).map(|l| (l, reference))
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Plugin>> {
        self.plugins.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.plugins.keys().map(String::as_str)
    }

    pub fn descriptors(&self) -> impl Iterator<Item = &Descriptor> {
        self.plugins.values().map(|p| p.descriptor())
    }
}

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::{Descriptor, Plugin};

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

/// Two plugins that claim one name.
#[derive(Debug, Clone, thiserror::Error)]
#[error("two plugins are named `{name}`: {first} and {second}")]
pub struct DuplicatePlugin {
    pub name: String,
    pub first: String,
    pub second: String,
}

/// The plugins a workflow may use, by name, and where each came from.
#[derive(Clone, Default)]
pub struct Registry {
    plugins: BTreeMap<String, (Arc<dyn Plugin>, String)>,
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

    /// Adds plugins that come from `origin` (`built-in`, an executable, a `.wasm` file).
    /// A name that is already taken is refused, naming both origins.
    pub fn add(
        &mut self,
        plugins: impl IntoIterator<Item = Arc<dyn Plugin>>,
        origin: &str,
    ) -> Result<(), DuplicatePlugin> {
        for plugin in plugins {
            let name = plugin.descriptor().name.clone();
            if let Some((_, first)) = self.plugins.get(&name) {
                return Err(DuplicatePlugin {
                    name,
                    first: first.clone(),
                    second: origin.to_owned(),
                });
            }
            self.plugins.insert(name, (plugin, origin.to_owned()));
        }
        Ok(())
    }

    /// Adds a plugin under a name other than its own (a `uses:` reference), replacing
    /// what was there.
    pub fn register_as(&mut self, name: &str, plugin: Arc<dyn Plugin>, origin: &str) {
        self.plugins
            .insert(name.to_owned(), (plugin, origin.to_owned()));
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
        self.plugins.get(name).map(|(p, _)| p)
    }

    /// Where the plugin called `name` came from.
    pub fn origin(&self, name: &str) -> Option<&str> {
        self.plugins.get(name).map(|(_, o)| o.as_str())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.plugins.keys().map(String::as_str)
    }

    pub fn descriptors(&self) -> impl Iterator<Item = &Descriptor> {
        self.plugins.values().map(|(p, _)| p.descriptor())
    }

    /// A plugin's descriptor as JSON (name, version, ports, config schema, ...) with
    /// `origin`: what `mediaflow plugins --json` prints and `GET /api/v1/plugins` returns.
    pub fn descriptor_json(&self, d: &Descriptor) -> serde_json::Value {
        let mut v = serde_json::to_value(d).unwrap_or(serde_json::Value::Null);
        v["origin"] =
            serde_json::Value::String(self.origin(&d.name).unwrap_or_default().to_owned());
        v
    }
}

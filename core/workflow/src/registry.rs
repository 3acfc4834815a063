use std::collections::BTreeMap;
use std::sync::Arc;

use mediaflow_plugin_api::{Descriptor, Plugin};

/// The plugins a workflow may use, by name.
#[derive(Clone, Default)]
pub struct Registry {
    plugins: BTreeMap<String, Arc<dyn Plugin>>,
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

    pub fn with(mut self, plugin: impl Plugin) -> Self {
        self.register(Arc::new(plugin));
        self
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

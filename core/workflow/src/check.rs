//! Checking a step's `with:` map: the plugin's JSON Schema, then its own `validate`.

use std::sync::Arc;

use mediaflow_plugin_api::{Plugin, Value};

/// A plugin with its compiled config schema.
#[derive(Clone)]
pub struct ConfigCheck {
    plugin: Arc<dyn Plugin>,
    validator: Arc<jsonschema::Validator>,
}

impl std::fmt::Debug for ConfigCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigCheck")
            .field("plugin", &self.plugin.descriptor().name)
            .finish_non_exhaustive()
    }
}

impl ConfigCheck {
    /// Compiles the plugin's config schema; the error says why it is not a schema.
    pub fn new(plugin: Arc<dyn Plugin>) -> Result<Self, String> {
        let validator =
            jsonschema::validator_for(&plugin.descriptor().config_schema).map_err(|e| {
                format!(
                    "plugin `{}` has an invalid config schema: {e}",
                    plugin.descriptor().name
                )
            })?;
        Ok(ConfigCheck {
            plugin,
            validator: Arc::new(validator),
        })
    }

    pub(crate) fn with_validator(
        plugin: Arc<dyn Plugin>,
        validator: Arc<jsonschema::Validator>,
    ) -> Self {
        ConfigCheck { plugin, validator }
    }

    pub fn plugin(&self) -> &Arc<dyn Plugin> {
        &self.plugin
    }

    /// Checks a resolved `with:` map; each problem is one line naming where it is.
    pub fn check(&self, config: &Value) -> Result<(), Vec<String>> {
        let mut problems: Vec<String> = self
            .validator
            .iter_errors(config)
            .map(|e| {
                let at = e.instance_path().as_str().to_owned();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{at}: {e}")
                }
            })
            .collect();
        if let Err(issues) = self.plugin.validate(config) {
            problems.extend(issues.into_iter().map(|i| {
                let help = i.help.map(|h| format!(" ({h})")).unwrap_or_default();
                if i.pointer.is_empty() {
                    format!("{}{help}", i.message)
                } else {
                    format!("{}: {}{help}", i.pointer, i.message)
                }
            }));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

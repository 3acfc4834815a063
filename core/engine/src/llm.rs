//! The host's text generation as plugins reach it (`RunContext::llm`): a plugin (normally
//! `llm.generate`) behind the [`LlmProvider`] interface, each request checked like a step's
//! `with:` map.

use std::sync::Arc;

use mediaflow_plugin_api::{LlmProvider, Plugin, PluginError, RunContext, Value};
use mediaflow_workflow::ConfigCheck;

/// Serves [`LlmProvider`] requests with a plugin.
pub struct PluginLlm {
    check: ConfigCheck,
}

impl PluginLlm {
    /// Fails when the plugin's config schema does not compile.
    pub fn new(plugin: Arc<dyn Plugin>) -> Result<Self, String> {
        Ok(PluginLlm {
            check: ConfigCheck::new(plugin)?,
        })
    }
}

#[async_trait::async_trait]
impl LlmProvider for PluginLlm {
    async fn generate(&self, request: Value, cx: &RunContext) -> Result<Value, PluginError> {
        self.check.check(&request).map_err(|problems| {
            PluginError::new(
                "bad_input",
                format!("invalid llm request: {}", problems.join("; ")),
            )
        })?;
        self.check.plugin().run(request, cx).await
    }
}

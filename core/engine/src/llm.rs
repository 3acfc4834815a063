//! The host's text generation as plugins reach it (`RunContext::llm`): a plugin (normally
//! `llm.generate`) behind the [`LlmProvider`] interface, each request checked like a step's
//! `with:` map.

use std::sync::Arc;

use mediaflow_plugin_api::{LlmProvider, Plugin, PluginError, RunContext, Value};
use mediaflow_workflow::ConfigCheck;

/// Serves [`LlmProvider`] requests with a plugin.
pub struct PluginLlm {
    check: Arc<ConfigCheck>,
}

impl PluginLlm {
    /// Fails when the plugin's config schema does not compile.
    pub fn new(plugin: Arc<dyn Plugin>) -> Result<Self, String> {
        Ok(PluginLlm {
            check: Arc::new(ConfigCheck::new(plugin)?),
        })
    }
}

#[async_trait::async_trait]
impl LlmProvider for PluginLlm {
    async fn generate(&self, request: Value, cx: &RunContext) -> Result<Value, PluginError> {
        // A process plugin's check waits for the process synchronously: off the async
        // workers, or many concurrent requests (a `for_each` of them) would block every
        // worker while the answers they wait for need one to be delivered.
        let (check, req) = (self.check.clone(), request.clone());
        tokio::task::spawn_blocking(move || check.check(&req))
            .await
            .map_err(|e| {
                PluginError::new("panic", format!("checking the llm request failed: {e}"))
            })?
            .map_err(|problems| {
                PluginError::new(
                    "bad_input",
                    format!("invalid llm request: {}", problems.join("; ")),
                )
            })?;
        self.check.plugin().run(request, cx).await
    }
}

//! The contract between mediaflow and its plugins.
//!
//! A plugin is a value implementing [`Plugin`]: it describes itself with a static
//! [`Descriptor`] (used by the workflow compiler), validates its configuration without doing
//! any I/O, and runs asynchronously with a [`RunContext`] that gives it cancellation,
//! progress reporting, logging and the artifact store.
//!
//! Built-in, process and WebAssembly plugins all sit behind this one trait, so the engine
//! cannot tell them apart. This crate is deliberately small: plugin authors depend on it.

mod artifact;
mod context;
mod descriptor;
mod error;

pub use artifact::{ArtifactRef, Artifacts};
pub use context::{EventSink, KeyValue, LogLevel, RunContext};
pub use descriptor::{Descriptor, Port, ValueType};
pub use error::{ConfigIssue, PluginError};
pub use serde_json::{Map, Value};
pub use tokio_util::sync::CancellationToken;

/// Version of this API. Hosts refuse plugins built against another major version.
pub const API_VERSION: &str = "1.0";

/// A step implementation.
///
/// `config` is the step's `with:` map after every `${{ }}` expression has been resolved;
/// the engine validated it against [`Descriptor::config_schema`] before calling `run`.
/// `run` returns the step's outputs as a JSON object whose keys are the declared outputs.
#[async_trait::async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// Static facts about the plugin, used by the compiler and `mediaflow plugins`.
    fn descriptor(&self) -> &Descriptor;

    /// Extra checks beyond the JSON Schema. Pure: no I/O. Called at compile time with the
    /// literal parts of the config (expressions are still unresolved strings) and again at
    /// run time with the resolved config.
    fn validate(&self, _config: &Value) -> Result<(), Vec<ConfigIssue>> {
        Ok(())
    }

    /// Runs the step once. Retries, timeouts and caching are the engine's business.
    async fn run(&self, config: Value, cx: &RunContext) -> Result<Value, PluginError>;
}

//! The contract between mediaflow and its plugins.
//!
//! A plugin is a value implementing [`Plugin`]: it describes itself with a static
//! [`Descriptor`] (used by the workflow compiler), validates its configuration without doing
//! any I/O, and runs asynchronously with a [`RunContext`] that gives it cancellation,
//! progress reporting, logging and the artifact store.
//!
//! Most plugins implement [`TypedPlugin`] instead: the step's `with:` map arrives parsed
//! into one struct, whose `JsonSchema` derive is also the plugin's config schema (with its
//! defaults and descriptions), and the outputs are one serializable struct. [`typed`]
//! wraps such a plugin as a [`Plugin`].
//!
//! Built-in, process and WebAssembly plugins all sit behind [`Plugin`], so the engine
//! cannot tell them apart. This crate is deliberately small: plugin authors depend on it.

mod artifact;
mod context;
mod descriptor;
mod duration;
mod error;
mod permission;
mod registry;
mod vectors;

use std::sync::Arc;

use mediaflow_types::has_expression;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use artifact::Artifacts;
pub use context::{EventSink, KeyValue, LlmProvider, LogLevel, RunContext};
pub use descriptor::Descriptor;
pub use duration::{duration_from_value, format_duration, parse_duration};
pub use error::{pointer_escape, pointer_unescape, ConfigIssue, PluginError};
pub use mediaflow_types::{schema_of, ArtifactRef, Port, ValueType, FILE_KEYWORD};
pub use permission::Permission;
pub use registry::{DuplicatePlugin, LoadError, PluginLoader, Registry};
pub use schemars::{self, JsonSchema};
pub use serde_json::{Map, Value};
pub use tokio_util::sync::CancellationToken;
pub use vectors::{EmbeddingModel, SearchMode, SearchResult, VectorHit, VectorRecord, Vectors};

/// Version of this API. Hosts refuse plugins built against another major version.
pub const API_VERSION: &str = "2.0";

/// A step implementation.
///
/// `config` is the step's `with:` map after every `${{ }}` expression has been resolved;
/// the engine validated it against [`Descriptor::config_schema`] and [`Plugin::validate`]
/// before calling `run`. `run` returns the step's outputs as a JSON object whose keys are
/// the declared outputs.
#[async_trait::async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// Static facts about the plugin, used by the compiler and `mediaflow plugins`.
    fn descriptor(&self) -> &Descriptor;

    /// Extra checks beyond the JSON Schema. Called at compile time with the literal parts
    /// of the config (expressions are still unresolved strings) and again at run time with
    /// the resolved config. Native plugins do no I/O here; a process plugin asks its
    /// process.
    fn validate(&self, _config: &Value) -> Result<(), Vec<ConfigIssue>> {
        Ok(())
    }

    /// Runs the step once. Retries, timeouts and caching are the engine's business.
    async fn run(&self, config: Value, cx: &RunContext) -> Result<Value, PluginError>;
}

/// A plugin whose settings and outputs are Rust types.
///
/// ```ignore
/// #[derive(Deserialize, JsonSchema)]
/// #[serde(deny_unknown_fields)]
/// struct Config {
///     /// The text to shout.
///     text: String,
///     /// How many exclamation marks.
///     #[serde(default = "one")]
///     marks: u32,
/// }
///
/// #[derive(Serialize, JsonSchema)]
/// struct Output { text: String }
///
/// struct Shout(Descriptor);
///
/// #[async_trait::async_trait]
/// impl TypedPlugin for Shout {
///     type Config = Config;
///     type Output = Output;
///     fn descriptor(&self) -> &Descriptor { &self.0 }
///     async fn run(&self, c: Config, _cx: &RunContext) -> Result<Output, PluginError> {
///         Ok(Output { text: c.text.to_uppercase() + &"!".repeat(c.marks as usize) })
///     }
/// }
/// // Descriptor::from_config::<Config>("text.shout", "1.0.0", "Shouts")
/// //     .inputs(["text"]).outputs_from::<Output>()
/// ```
#[async_trait::async_trait]
pub trait TypedPlugin: Send + Sync + 'static {
    /// The whole `with:` map, parsed.
    type Config: DeserializeOwned + Send + 'static;
    /// The outputs; serialized to the step's output object.
    type Output: Serialize + Send;

    fn descriptor(&self) -> &Descriptor;

    /// Checks that need more than the schema (two settings that exclude each other, a
    /// template that does not parse). Pure: no I/O.
    fn check(&self, _config: &Self::Config) -> Vec<ConfigIssue> {
        Vec::new()
    }

    async fn run(&self, config: Self::Config, cx: &RunContext)
        -> Result<Self::Output, PluginError>;
}

/// A [`TypedPlugin`] as a [`Plugin`].
pub struct Typed<P>(pub P);

/// Wraps a [`TypedPlugin`] for a registry or a plugin process.
pub fn typed<P: TypedPlugin>(plugin: P) -> Arc<dyn Plugin> {
    Arc::new(Typed(plugin))
}

/// `config` with each top-level setting that is a `${{ }}` expression (and not text) left
/// out, or, when the schema requires it, replaced by a stand-in of its type.
fn stand_ins(config: &Value, schema: &Value) -> Value {
    let Value::Object(map) = config else {
        return config.clone();
    };
    let required = |key: &str| {
        schema
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|k| k.as_str() == Some(key)))
    };
    let mut out = Map::new();
    for (key, value) in map {
        let prop = schema.get("properties").and_then(|p| p.get(key.as_str()));
        let ty = prop.map(ValueType::from_schema).unwrap_or(ValueType::Any);
        if !has_expression(value) || (value.is_string() && ty == ValueType::String) {
            out.insert(key.clone(), value.clone());
            continue;
        }
        if !required(key) {
            continue;
        }
        let stand_in = match (prop.and_then(|p| p.get("default")), ty) {
            (Some(d), _) => d.clone(),
            (None, ValueType::File) => ArtifactRef {
                sha256: "0".repeat(64),
                media_type: "application/octet-stream".to_owned(),
                size: 0,
                name: None,
            }
            .to_value(),
            (None, ValueType::Integer | ValueType::Number) => prop
                .and_then(|p| p.get("minimum"))
                .cloned()
                .unwrap_or(0.into()),
            (None, ValueType::Boolean) => Value::Bool(false),
            (None, ValueType::List) => Value::Array(Vec::new()),
            (None, ValueType::Object) => Value::Object(Map::new()),
            (None, ValueType::String | ValueType::Any) => Value::Null,
        };
        out.insert(key.clone(), stand_in);
    }
    Value::Object(out)
}

/// Parses a resolved `with:` map into a plugin's config type.
pub fn parse_config<C: DeserializeOwned>(config: &Value) -> Result<C, PluginError> {
    C::deserialize(config)
        .map_err(|e| PluginError::new("bad_config", format!("invalid settings: {e}")))
}

#[async_trait::async_trait]
impl<P: TypedPlugin> Plugin for Typed<P> {
    fn descriptor(&self) -> &Descriptor {
        self.0.descriptor()
    }

    fn validate(&self, config: &Value) -> Result<(), Vec<ConfigIssue>> {
        let issues = match P::Config::deserialize(config) {
            Ok(parsed) => self.0.check(&parsed),
            // At compile time, `${{ }}` strings stand where files, numbers or lists will be.
            // Check what can be known: settings that are still expressions (and not text
            // anyway) are left out, or stand in by a placeholder when required; `check`
            // then runs, and only its findings about other settings count (a complaint about
            // the whole map may come from a placeholder). The rest is checked once the
            // expressions are resolved.
            Err(_) if has_expression(config) => {
                let known = stand_ins(config, &self.descriptor().config_schema);
                match P::Config::deserialize(&known) {
                    Ok(parsed) => self
                        .0
                        .check(&parsed)
                        .into_iter()
                        .filter(|i| !i.pointer.is_empty())
                        .collect(),
                    Err(_) => Vec::new(),
                }
            }
            Err(e) => vec![ConfigIssue::new("", format!("invalid settings: {e}"))],
        };
        if issues.is_empty() {
            Ok(())
        } else {
            Err(issues)
        }
    }

    async fn run(&self, config: Value, cx: &RunContext) -> Result<Value, PluginError> {
        let parsed = parse_config::<P::Config>(&config)?;
        let out = self.0.run(parsed, cx).await?;
        match serde_json::to_value(out) {
            Ok(v @ Value::Object(_)) => Ok(v),
            Ok(_) => Err(PluginError::new(
                "bad_outputs",
                format!(
                    "plugin `{}` returned outputs that are not an object",
                    self.descriptor().name
                ),
            )),
            Err(e) => Err(PluginError::new(
                "bad_outputs",
                format!("cannot serialize the outputs: {e}"),
            )),
        }
    }
}

use serde::Deserialize as _;

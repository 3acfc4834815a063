//! Write mediaflow plugins in Rust.
//!
//! A plugin is a type implementing [`Plugin`], exported with [`export!`], compiled for
//! `wasm32-wasip2` (`mediaflow plugin build` does it):
//!
//! ```ignore
//! use mediaflow_sdk::*;
//!
//! struct Shout;
//!
//! impl Plugin for Shout {
//!     fn describe() -> Descriptor {
//!         Descriptor::new("text.shout", "1.0.0", "Upper-cases text")
//!             .input("text", Type::String)
//!             .output("text", Type::String)
//!     }
//!
//!     fn run(_config: Value, inputs: Value) -> Result<Value, Error> {
//!         let text = get_str(&inputs, "text")?;
//!         Ok(json!({ "text": text.to_uppercase() }))
//!     }
//! }
//!
//! export!(Shout);
//! ```
//!
//! The host runs every call in a fresh sandbox: no files, no environment, no network, a
//! wall clock stuck at 1970 unless the step grants `clock`. [`log`] always works;
//! [`llm`], [`artifacts`] and [`kv`] work when the step grants them in `permissions:`,
//! and otherwise return an [`Error`] with code `permission_denied`.

// Lets generated code name this crate the way plugin crates do.
extern crate self as mediaflow_sdk;

use std::collections::BTreeMap;

pub use serde_json::{json, Map, Value};

/// Bindings generated from `sdk/wit` (WIT package `mediaflow:plugin@1.0.0`).
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "mediaflow_sdk::bindings",
        runtime_path: "mediaflow_sdk::__private::wit_bindgen::rt",
    });
}

use bindings::mediaflow::plugin::types as wit;

/// The version of the WIT package this SDK implements.
pub const WIT_VERSION: &str = "1.0.0";

/// The type of a value on an input or output port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    String,
    Number,
    Integer,
    Boolean,
    List,
    Object,
    /// An artifact reference (see [`artifacts`]).
    File,
    Any,
}

impl Type {
    fn to_wit(self) -> wit::ValueType {
        match self {
            Type::String => wit::ValueType::String,
            Type::Number => wit::ValueType::Number,
            Type::Integer => wit::ValueType::Integer,
            Type::Boolean => wit::ValueType::Boolean,
            Type::List => wit::ValueType::List,
            Type::Object => wit::ValueType::Object,
            Type::File => wit::ValueType::File,
            Type::Any => wit::ValueType::Any,
        }
    }

    fn schema(self) -> Value {
        match self {
            Type::String => json!({"type": "string"}),
            Type::Number => json!({"type": "number"}),
            Type::Integer => json!({"type": "integer"}),
            Type::Boolean => json!({"type": "boolean"}),
            Type::List => json!({"type": "array"}),
            Type::Object | Type::File => json!({"type": "object"}),
            Type::Any => json!({}),
        }
    }
}

/// What a plugin tells mediaflow about itself.
#[derive(Clone, Debug)]
pub struct Descriptor {
    name: String,
    version: String,
    description: String,
    inputs: Vec<(String, Type, bool, String)>,
    outputs: Vec<(String, Type, String)>,
    options: BTreeMap<String, Value>,
    required: Vec<String>,
    schema: Option<Value>,
    cacheable: bool,
}

impl Descriptor {
    /// `name` is dotted (`text.ap_headline`), `version` semver.
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        Descriptor {
            name: name.to_owned(),
            version: version.to_owned(),
            description: description.to_owned(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            options: BTreeMap::new(),
            required: Vec::new(),
            schema: None,
            cacheable: true,
        }
    }

    /// A required data input (a key of the step's `with:`).
    pub fn input(mut self, name: &str, ty: Type) -> Self {
        self.inputs.push((name.to_owned(), ty, true, String::new()));
        self.required.push(name.to_owned());
        self
    }

    /// An optional data input.
    pub fn optional_input(mut self, name: &str, ty: Type) -> Self {
        self.inputs
            .push((name.to_owned(), ty, false, String::new()));
        self
    }

    pub fn output(mut self, name: &str, ty: Type) -> Self {
        self.outputs.push((name.to_owned(), ty, String::new()));
        self
    }

    /// A configuration option with its JSON Schema, e.g.
    /// `.option("style", json!({"enum": ["title", "sentence"], "default": "title"}))`.
    pub fn option(mut self, name: &str, schema: Value) -> Self {
        self.options.insert(name.to_owned(), schema);
        self
    }

    /// Replaces the generated schema of `with:` with a complete one.
    pub fn schema(mut self, schema: Value) -> Self {
        self.schema = Some(schema);
        self
    }

    /// For plugins whose results must not be cached (side effects, randomness, `kv`).
    pub fn not_cacheable(mut self) -> Self {
        self.cacheable = false;
        self
    }

    fn config_schema(&self) -> Value {
        if let Some(s) = &self.schema {
            return s.clone();
        }
        let mut properties = Map::new();
        for (name, ty, _, _) in &self.inputs {
            properties.insert(name.clone(), ty.schema());
        }
        for (name, schema) in &self.options {
            properties.insert(name.clone(), schema.clone());
        }
        json!({
            "type": "object",
            "properties": properties,
            "required": self.required,
            "additionalProperties": false,
        })
    }

    fn to_wit(&self) -> wit::Descriptor {
        wit::Descriptor {
            name: self.name.clone(),
            version: self.version.clone(),
            description: self.description.clone(),
            config_schema: self.config_schema().to_string(),
            inputs: self
                .inputs
                .iter()
                .map(|(name, ty, required, description)| wit::Port {
                    name: name.clone(),
                    type_: ty.to_wit(),
                    required: *required,
                    description: description.clone(),
                })
                .collect(),
            outputs: self
                .outputs
                .iter()
                .map(|(name, ty, description)| wit::Port {
                    name: name.clone(),
                    type_: ty.to_wit(),
                    required: false,
                    description: description.clone(),
                })
                .collect(),
            cacheable: self.cacheable,
        }
    }
}

/// A step failure. `code` is a short word (`bad_input`, `not_found`…); `help` tells the
/// workflow author what to do.
#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    pub code: String,
    pub message: String,
    pub help: Option<String>,
    pub retryable: bool,
}

impl Error {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Error {
            code: code.to_owned(),
            message: message.into(),
            help: None,
            retryable: false,
        }
    }

    /// The step's input is unusable.
    pub fn bad_input(message: impl Into<String>) -> Self {
        Error::new("bad_input", message)
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Another attempt may succeed (the engine retries per the step's `retry:`).
    pub fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }

    fn from_wit(e: wit::PluginError) -> Self {
        Error {
            code: e.code,
            message: e.message,
            help: e.help,
            retryable: e.retryable,
        }
    }

    fn into_wit(self) -> wit::PluginError {
        wit::PluginError {
            code: self.code,
            message: self.message,
            help: self.help,
            retryable: self.retryable,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

/// A configuration problem found by [`Plugin::validate`], at a JSON pointer into `with:`
/// (e.g. `/max_keywords`); the workflow compiler shows it at that line.
#[derive(Clone, Debug, PartialEq)]
pub struct Issue {
    pub pointer: String,
    pub message: String,
    pub help: Option<String>,
}

impl Issue {
    pub fn new(pointer: &str, message: impl Into<String>) -> Self {
        Issue {
            pointer: pointer.to_owned(),
            message: message.into(),
            help: None,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// A mediaflow plugin.
pub trait Plugin {
    /// Name, version, ports and configuration options. Called once at load.
    fn describe() -> Descriptor;

    /// Checks beyond the schema. Called when the workflow is compiled (expressions are still
    /// `${{ … }}` strings then) and before each run. No capabilities are granted here.
    fn validate(_config: &Value) -> Vec<Issue> {
        Vec::new()
    }

    /// Runs one step. `config` holds the options, `inputs` the input ports, as declared
    /// in [`Plugin::describe`]. Returns the outputs as a JSON object.
    fn run(config: Value, inputs: Value) -> Result<Value, Error>;
}

/// The string at `key`, or a `bad_input` error naming it.
pub fn get_str<'a>(v: &'a Value, key: &str) -> Result<&'a str, Error> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::bad_input(format!("`{key}` must be a string")))
}

/// The string at `key`, or `default` when absent.
pub fn get_str_or<'a>(v: &'a Value, key: &str, default: &'a str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or(default)
}

/// The unsigned integer at `key`, or `default` when absent.
pub fn get_u64_or(v: &Value, key: &str, default: u64) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(default)
}

/// The boolean at `key`, or `default` when absent.
pub fn get_bool_or(v: &Value, key: &str, default: bool) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(default)
}

/// Step logs and progress; always available.
pub mod log {
    use crate::bindings::mediaflow::plugin::log as host;

    pub fn debug(message: &str) {
        host::log(host::Level::Debug, message);
    }
    pub fn info(message: &str) {
        host::log(host::Level::Info, message);
    }
    pub fn warn(message: &str) {
        host::log(host::Level::Warn, message);
    }
    pub fn error(message: &str) {
        host::log(host::Level::Error, message);
    }
    /// `fraction` in 0.0..=1.0.
    pub fn progress(fraction: f32, message: Option<&str>) {
        host::progress(fraction, message);
    }
}

/// Text generation through the host's `llm.generate` (needs `permissions: [llm]`).
pub mod llm {
    use crate::{Error, Value};

    /// `request` is an `llm.generate` `with:` map (`model`, `prompt`, `max_tokens`…);
    /// returns that step's outputs (`text`, `json`, `tokens`…).
    pub fn generate(request: &Value) -> Result<Value, Error> {
        let out = crate::bindings::mediaflow::plugin::llm::generate(&request.to_string())
            .map_err(Error::from_wit)?;
        serde_json::from_str(&out).map_err(|e| Error::new("bad_output", e.to_string()))
    }
}

/// The step's files (needs `permissions: [artifacts]`).
pub mod artifacts {
    use crate::bindings::mediaflow::plugin::artifacts as host;
    use crate::{Error, Value};

    /// Reads an artifact that was passed to the step (a `type: file` input).
    pub fn read(reference: &Value) -> Result<Vec<u8>, Error> {
        host::read(&reference.to_string()).map_err(Error::from_wit)
    }

    /// Stores bytes as an artifact; put the returned reference in a `file` output.
    pub fn write(name: &str, media_type: &str, data: &[u8]) -> Result<Value, Error> {
        let out = host::write(name, media_type, data).map_err(Error::from_wit)?;
        serde_json::from_str(&out).map_err(|e| Error::new("bad_output", e.to_string()))
    }
}

/// This plugin's own key-value namespace, kept across runs (needs `permissions: [kv]`).
pub mod kv {
    use crate::bindings::mediaflow::plugin::kv as host;
    use crate::Error;

    pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
        host::get(key).map_err(Error::from_wit)
    }
    pub fn set(key: &str, value: &[u8]) -> Result<(), Error> {
        host::set(key, value).map_err(Error::from_wit)
    }
    /// Whether the key existed.
    pub fn delete(key: &str) -> Result<bool, Error> {
        host::delete(key).map_err(Error::from_wit)
    }
    /// Keys starting with `prefix`, sorted.
    pub fn keys(prefix: &str) -> Result<Vec<String>, Error> {
        host::keys(prefix).map_err(Error::from_wit)
    }
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    use crate::bindings::mediaflow::plugin::types as wit;
    use crate::{Error, Plugin, Value};

    pub fn describe<P: Plugin>() -> wit::Descriptor {
        P::describe().to_wit()
    }

    pub fn validate<P: Plugin>(config: String) -> Vec<wit::ConfigIssue> {
        let config: Value = match serde_json::from_str(&config) {
            Ok(v) => v,
            Err(e) => {
                return vec![wit::ConfigIssue {
                    pointer: String::new(),
                    message: format!("config is not JSON: {e}"),
                    help: None,
                }]
            }
        };
        P::validate(&config)
            .into_iter()
            .map(|i| wit::ConfigIssue {
                pointer: i.pointer,
                message: i.message,
                help: i.help,
            })
            .collect()
    }

    pub fn run<P: Plugin>(config: String, inputs: String) -> Result<String, wit::PluginError> {
        let parse = |what: &str, text: &str| {
            serde_json::from_str::<Value>(text)
                .map_err(|e| Error::bad_input(format!("{what} is not JSON: {e}")).into_wit())
        };
        let config = parse("config", &config)?;
        let inputs = parse("inputs", &inputs)?;
        match P::run(config, inputs) {
            Ok(out @ Value::Object(_)) => Ok(out.to_string()),
            Ok(_) => Err(
                Error::new("bad_output", "the plugin's outputs must be a JSON object").into_wit(),
            ),
            Err(e) => Err(e.into_wit()),
        }
    }
}

/// Exports a [`Plugin`] as the component's `describe`, `validate` and `run`.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        #[doc(hidden)]
        struct __MediaflowExport;

        impl $crate::bindings::Guest for __MediaflowExport {
            fn describe() -> $crate::bindings::mediaflow::plugin::types::Descriptor {
                $crate::__private::describe::<$plugin>()
            }
            fn validate(
                config: ::std::string::String,
            ) -> ::std::vec::Vec<$crate::bindings::mediaflow::plugin::types::ConfigIssue> {
                $crate::__private::validate::<$plugin>(config)
            }
            fn run(
                config: ::std::string::String,
                inputs: ::std::string::String,
            ) -> ::std::result::Result<
                ::std::string::String,
                $crate::bindings::mediaflow::plugin::types::PluginError,
            > {
                $crate::__private::run::<$plugin>(config, inputs)
            }
        }

        $crate::bindings::__export_world!(__MediaflowExport with_types_in $crate::bindings);
    };
}

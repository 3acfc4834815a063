use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The type of a value flowing between steps. The compiler checks that an output feeds
/// only inputs of a compatible type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    String,
    Number,
    Integer,
    Boolean,
    List,
    Object,
    /// An [`crate::ArtifactRef`]: audio, images, subtitles … stored by content hash.
    File,
    Any,
}

impl ValueType {
    /// Whether a value of type `self` may be used where `expected` is required.
    pub fn fits(self, expected: ValueType) -> bool {
        use ValueType::*;
        matches!((self, expected), (Any, _) | (_, Any) | (Integer, Number)) || self == expected
    }

    /// The type of a concrete JSON value.
    pub fn of(value: &Value) -> ValueType {
        match value {
            Value::Null => ValueType::Any,
            Value::Bool(_) => ValueType::Boolean,
            Value::Number(n) if n.is_i64() || n.is_u64() => ValueType::Integer,
            Value::Number(_) => ValueType::Number,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::List,
            Value::Object(_) if crate::ArtifactRef::from_value(value).is_some() => ValueType::File,
            Value::Object(_) => ValueType::Object,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Number => "number",
            ValueType::Integer => "integer",
            ValueType::Boolean => "boolean",
            ValueType::List => "list",
            ValueType::Object => "object",
            ValueType::File => "file",
            ValueType::Any => "any",
        }
    }

    pub fn parse(s: &str) -> Option<ValueType> {
        Some(match s {
            "string" => ValueType::String,
            "number" => ValueType::Number,
            "integer" => ValueType::Integer,
            "boolean" => ValueType::Boolean,
            "list" => ValueType::List,
            "object" => ValueType::Object,
            "file" => ValueType::File,
            "any" => ValueType::Any,
            _ => return None,
        })
    }
}

impl std::fmt::Display for ValueType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A typed, named input or output of a plugin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Port {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ValueType,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl Port {
    pub fn new(name: &str, ty: ValueType) -> Self {
        Port {
            name: name.to_owned(),
            ty,
            required: false,
            description: String::new(),
        }
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub fn describe(mut self, text: &str) -> Self {
        self.description = text.to_owned();
        self
    }
}

/// Static facts about a plugin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Descriptor {
    /// Dotted name used in `uses:`, e.g. `text.template`.
    pub name: String,
    /// Semantic version; part of every cache key.
    pub version: String,
    #[serde(default)]
    pub description: String,
    /// Typed data keys of the step's `with:` map (the rest is plain configuration).
    #[serde(default)]
    pub inputs: Vec<Port>,
    /// Keys of the output object.
    #[serde(default)]
    pub outputs: Vec<Port>,
    /// JSON Schema of the whole `with:` map.
    pub config_schema: Value,
    /// Host capabilities the plugin uses (`fs.read`, `fs.write`, `net`, `llm` …).
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Whether equal inputs give equal outputs, so results may be cached. Plugins with side
    /// effects (writing files, sending mail) say `false`.
    #[serde(default = "yes")]
    pub cacheable: bool,
    /// Runs in a sandbox and gets only the capabilities a step grants (`permissions:`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sandboxed: bool,
    /// Most calls of this plugin that may run at once in one engine, if limited.
    #[serde(default)]
    pub max_concurrency: Option<usize>,
}

fn yes() -> bool {
    true
}

impl Descriptor {
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        Descriptor {
            name: name.to_owned(),
            version: version.to_owned(),
            description: description.to_owned(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            config_schema: serde_json::json!({"type": "object"}),
            capabilities: Vec::new(),
            cacheable: true,
            sandboxed: false,
            max_concurrency: None,
        }
    }

    pub fn input(mut self, port: Port) -> Self {
        self.inputs.push(port);
        self
    }

    pub fn output(mut self, port: Port) -> Self {
        self.outputs.push(port);
        self
    }

    pub fn schema(mut self, schema: Value) -> Self {
        self.config_schema = schema;
        self
    }

    pub fn capability(mut self, name: &str) -> Self {
        self.capabilities.push(name.to_owned());
        self
    }

    /// Marks the plugin as sandboxed: it gets only the capabilities its step grants.
    pub fn sandboxed(mut self) -> Self {
        self.sandboxed = true;
        self
    }

    pub fn not_cacheable(mut self) -> Self {
        self.cacheable = false;
        self
    }

    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = Some(n);
        self
    }

    pub fn input_port(&self, name: &str) -> Option<&Port> {
        self.inputs.iter().find(|p| p.name == name)
    }

    pub fn output_port(&self, name: &str) -> Option<&Port> {
        self.outputs.iter().find(|p| p.name == name)
    }
}

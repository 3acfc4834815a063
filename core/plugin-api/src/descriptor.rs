use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::artifact::FILE_KEYWORD;
use crate::Permission;

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
    /// Every type, in the order documentation lists them.
    pub const ALL: [ValueType; 8] = [
        ValueType::String,
        ValueType::Number,
        ValueType::Integer,
        ValueType::Boolean,
        ValueType::List,
        ValueType::Object,
        ValueType::File,
        ValueType::Any,
    ];

    /// The names of every type (`string`, `number` …), for help texts and schemas.
    pub fn names() -> impl Iterator<Item = &'static str> {
        ValueType::ALL.into_iter().map(ValueType::as_str)
    }

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

    /// The type of the values a JSON Schema admits (`Any` when it admits several kinds).
    /// `null` is ignored: an optional value has the type of its non-null form.
    pub fn from_schema(schema: &Value) -> ValueType {
        let Some(obj) = schema.as_object() else {
            return ValueType::Any;
        };
        if obj.get(FILE_KEYWORD).and_then(Value::as_str) == Some("file") {
            return ValueType::File;
        }
        let json_type = |name: &str| match name {
            "string" => Some(ValueType::String),
            "number" => Some(ValueType::Number),
            "integer" => Some(ValueType::Integer),
            "boolean" => Some(ValueType::Boolean),
            "array" => Some(ValueType::List),
            "object" => Some(ValueType::Object),
            _ => None,
        };
        let one = |types: Vec<ValueType>| match types.as_slice() {
            [t] => *t,
            _ => ValueType::Any,
        };
        match obj.get("type") {
            Some(Value::String(t)) => return json_type(t).unwrap_or(ValueType::Any),
            Some(Value::Array(ts)) => {
                return one(ts
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|t| *t != "null")
                    .filter_map(json_type)
                    .collect())
            }
            _ => {}
        }
        if let Some(values) = obj.get("enum").and_then(Value::as_array) {
            let mut types: Vec<ValueType> = values
                .iter()
                .filter(|v| !v.is_null())
                .map(ValueType::of)
                .collect();
            types.dedup();
            return one(types);
        }
        if let Some(c) = obj.get("const") {
            return ValueType::of(c);
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(branches) = obj.get(key).and_then(Value::as_array) {
                let mut types: Vec<ValueType> = branches
                    .iter()
                    .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
                    .map(ValueType::from_schema)
                    .collect();
                types.dedup();
                return one(types);
            }
        }
        ValueType::Any
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
        ValueType::ALL.into_iter().find(|t| t.as_str() == s)
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

    /// The port for property `name` of an object schema, if the schema has it.
    pub fn from_property(schema: &Value, name: &str) -> Option<Port> {
        let prop = schema.get("properties")?.get(name)?;
        let required = schema
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|n| n.as_str() == Some(name)));
        Some(Port {
            name: name.to_owned(),
            ty: ValueType::from_schema(prop),
            required,
            description: prop
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        })
    }
}

/// The JSON Schema of `T`, as mediaflow uses schemas: JSON Schema 2020-12, every
/// subschema inline (no `$ref`), no `$schema` or root `title`. Field doc comments become
/// descriptions, `#[serde(default = …)]` values become `default`s.
pub fn schema_of<T: JsonSchema>() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.meta_schema = None;
    settings.inline_subschemas = true;
    let mut schema = settings
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    if let Some(obj) = schema.as_object_mut() {
        obj.remove("title");
        obj.remove("$schema");
    }
    schema
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
    /// The grants a sandboxed plugin can use. A step may grant only these (the compiler
    /// refuses others); native plugins are trusted and have none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<Permission>,
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
    /// A descriptor whose config schema is written by hand (see also [`Self::from_config`]).
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        Descriptor {
            name: name.to_owned(),
            version: version.to_owned(),
            description: description.to_owned(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            config_schema: serde_json::json!({"type": "object"}),
            permissions: Vec::new(),
            cacheable: true,
            sandboxed: false,
            max_concurrency: None,
        }
    }

    /// A descriptor whose config schema, defaults and descriptions come from the struct
    /// the plugin parses its `with:` map into, so they are written once.
    pub fn from_config<C: JsonSchema>(name: &str, version: &str, description: &str) -> Self {
        Descriptor::new(name, version, description).schema(schema_of::<C>())
    }

    /// Declares which keys of the config are data inputs. Each becomes a port with the
    /// type, description and requiredness its schema property has.
    ///
    /// # Panics
    /// If the config schema has no such property: a bug in the plugin, caught by its
    /// first test.
    pub fn inputs<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        for name in names {
            let port = Port::from_property(&self.config_schema, name).unwrap_or_else(|| {
                panic!(
                    "plugin `{}`: input `{name}` is not a field of its config",
                    self.name
                )
            });
            self.inputs.push(port);
        }
        self
    }

    /// Sets the output ports from the struct the plugin returns.
    pub fn outputs_from<O: JsonSchema>(mut self) -> Self {
        let schema = schema_of::<O>();
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for name in props.keys() {
                if let Some(mut port) = Port::from_property(&schema, name) {
                    port.required = false;
                    self.outputs.push(port);
                }
            }
        }
        self
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

    /// The names of the config schema's top-level properties.
    pub fn settings(&self) -> Vec<&str> {
        self.config_schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ArtifactRef;

    /// Settings of a test plugin.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Config {
        /// The audio to read.
        audio: ArtifactRef,
        /// Words to prime with.
        #[serde(default)]
        prompt: Option<String>,
        #[serde(default = "three")]
        #[schemars(range(min = 1, max = 9))]
        beams: u32,
        mode: Mode,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Fast,
        Exact,
    }

    fn three() -> u32 {
        3
    }

    #[derive(Serialize, JsonSchema)]
    #[allow(dead_code)]
    struct Output {
        /// The transcript.
        text: String,
        segments: Vec<String>,
        json: Option<Value>,
    }

    #[test]
    fn ports_and_defaults_come_from_the_structs() {
        let d = Descriptor::from_config::<Config>("t.x", "1.0.0", "test")
            .inputs(["audio", "prompt"])
            .outputs_from::<Output>();
        let s = &d.config_schema;
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(s["properties"]["beams"]["default"], 3);
        assert_eq!(s["properties"]["beams"]["maximum"], 9);
        assert!(s.get("$schema").is_none() && s.get("title").is_none());
        let audio = d.input_port("audio").unwrap();
        assert_eq!((audio.ty, audio.required), (ValueType::File, true));
        assert_eq!(audio.description, "The audio to read.");
        let prompt = d.input_port("prompt").unwrap();
        assert_eq!((prompt.ty, prompt.required), (ValueType::String, false));
        assert_eq!(
            ValueType::from_schema(&s["properties"]["mode"]),
            ValueType::String
        );
        let outs: Vec<(&str, ValueType)> =
            d.outputs.iter().map(|p| (p.name.as_str(), p.ty)).collect();
        assert_eq!(
            outs,
            [
                ("text", ValueType::String),
                ("segments", ValueType::List),
                ("json", ValueType::Any)
            ]
        );
    }

    #[test]
    #[should_panic(expected = "input `nope` is not a field")]
    fn an_input_that_is_not_a_field_is_a_bug() {
        let _ = Descriptor::from_config::<Config>("t.x", "1.0.0", "test").inputs(["nope"]);
    }
}

//! What a plugin tells mediaflow about itself, derived from its `Config` and `Output`
//! types the way the host derives a native plugin's.

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{json, Value};

use crate::bindings::mediaflow::plugin::types as wit;
use crate::file::FILE_KEYWORD;

/// The type of a value on an input or output port. The workflow compiler checks that an
/// output only feeds inputs of a compatible type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    String,
    Number,
    Integer,
    Boolean,
    List,
    Object,
    /// A [`File`](crate::File): an artifact reference.
    File,
    Any,
}

impl ValueType {
    /// The type of a concrete JSON value.
    pub fn of(value: &Value) -> ValueType {
        match value {
            Value::Null => ValueType::Any,
            Value::Bool(_) => ValueType::Boolean,
            Value::Number(n) if n.is_i64() || n.is_u64() => ValueType::Integer,
            Value::Number(_) => ValueType::Number,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::List,
            Value::Object(_) if crate::File::from_value(value).is_some() => ValueType::File,
            Value::Object(_) => ValueType::Object,
        }
    }

    /// The type of the values a JSON Schema admits (`Any` when it admits several kinds),
    /// by the host's rules: `x-mediaflow-type: file`, then `type`, `enum`, `const`,
    /// `anyOf`/`oneOf`. `null` is ignored: an optional value has the type of its non-null
    /// form.
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
        let deduped = |mut types: Vec<ValueType>| {
            types.dedup();
            one(types)
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
            return deduped(
                values
                    .iter()
                    .filter(|v| !v.is_null())
                    .map(ValueType::of)
                    .collect(),
            );
        }
        if let Some(c) = obj.get("const") {
            return ValueType::of(c);
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(branches) = obj.get(key).and_then(Value::as_array) {
                return deduped(
                    branches
                        .iter()
                        .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
                        .map(ValueType::from_schema)
                        .collect(),
                );
            }
        }
        ValueType::Any
    }

    fn to_wit(self) -> wit::ValueType {
        match self {
            ValueType::String => wit::ValueType::String,
            ValueType::Number => wit::ValueType::Number,
            ValueType::Integer => wit::ValueType::Integer,
            ValueType::Boolean => wit::ValueType::Boolean,
            ValueType::List => wit::ValueType::List,
            ValueType::Object => wit::ValueType::Object,
            ValueType::File => wit::ValueType::File,
            ValueType::Any => wit::ValueType::Any,
        }
    }
}

/// A typed, named input or output of a plugin.
#[derive(Clone, Debug, PartialEq)]
pub struct Port {
    pub name: String,
    pub ty: ValueType,
    pub required: bool,
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

    /// The port for property `name` of an object schema, if the schema has it: its type
    /// and description from the property, required if `name` is in `required`.
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

    fn to_wit(&self) -> wit::Port {
        wit::Port {
            name: self.name.clone(),
            type_: self.ty.to_wit(),
            required: self.required,
            description: self.description.clone(),
        }
    }
}

/// The JSON Schema of `T` as mediaflow uses schemas: JSON Schema 2020-12, every subschema
/// inline (no `$ref`), no `$schema` or root `title`. Field doc comments become
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

/// Static facts about a plugin: name, version, the JSON Schema of `with:`, the ports.
#[derive(Clone, Debug, PartialEq)]
pub struct Descriptor {
    /// Dotted name used in `uses:`, e.g. `text.ap_headline`.
    pub name: String,
    /// Semantic version; part of every cache key.
    pub version: String,
    pub description: String,
    /// Typed data keys of the step's `with:` map (the rest is plain configuration).
    pub inputs: Vec<Port>,
    /// Keys of the output object.
    pub outputs: Vec<Port>,
    /// JSON Schema of the whole `with:` map.
    pub config_schema: Value,
    /// Whether equal inputs give equal outputs, so results may be cached.
    pub cacheable: bool,
}

impl Descriptor {
    /// A descriptor whose config schema is written by hand ([`Self::schema`]); see
    /// [`Self::from_config`] for the usual way. `name` is dotted (`text.ap_headline`),
    /// `version` semver.
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        Descriptor {
            name: name.to_owned(),
            version: version.to_owned(),
            description: description.to_owned(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            config_schema: json!({"type": "object"}),
            cacheable: true,
        }
    }

    /// A descriptor whose config schema, defaults and descriptions come from the struct
    /// the plugin parses its `with:` map into, so they are written once.
    pub fn from_config<C: JsonSchema>(name: &str, version: &str, description: &str) -> Self {
        Descriptor::new(name, version, description).schema(schema_of::<C>())
    }

    /// Declares which fields of the config are data inputs. Each becomes a port with the
    /// type, description and requiredness its schema property has.
    ///
    /// # Panics
    /// If the config schema has no such property: a bug in the plugin, caught by its
    /// first test that calls `describe()`.
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

    /// Sets the output ports from the struct the plugin returns, in field order.
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

    /// Adds an input port by hand (for a hand-written schema).
    pub fn input(mut self, port: Port) -> Self {
        self.inputs.push(port);
        self
    }

    /// Adds an output port by hand.
    pub fn output(mut self, port: Port) -> Self {
        self.outputs.push(port);
        self
    }

    /// Replaces the config schema.
    pub fn schema(mut self, schema: Value) -> Self {
        self.config_schema = schema;
        self
    }

    /// For plugins whose results must not be cached (side effects, randomness, `kv`).
    pub fn not_cacheable(mut self) -> Self {
        self.cacheable = false;
        self
    }

    pub fn input_port(&self, name: &str) -> Option<&Port> {
        self.inputs.iter().find(|p| p.name == name)
    }

    pub fn output_port(&self, name: &str) -> Option<&Port> {
        self.outputs.iter().find(|p| p.name == name)
    }

    pub(crate) fn to_wit(&self) -> wit::Descriptor {
        wit::Descriptor {
            name: self.name.clone(),
            version: self.version.clone(),
            description: self.description.clone(),
            config_schema: self.config_schema.to_string(),
            inputs: self.inputs.iter().map(Port::to_wit).collect(),
            outputs: self.outputs.iter().map(Port::to_wit).collect(),
            cacheable: self.cacheable,
        }
    }
}

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::file::FILE_KEYWORD;

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

/// The input ports named `names`, each from the property of that name in the config
/// schema `schema`: its type, description, and requiredness.
///
/// # Panics
/// If the schema has no such property: a bug in plugin `plugin`, caught by its first test
/// that describes it.
pub fn input_ports<'a>(
    plugin: &str,
    schema: &Value,
    names: impl IntoIterator<Item = &'a str>,
) -> Vec<Port> {
    names
        .into_iter()
        .map(|name| {
            Port::from_property(schema, name).unwrap_or_else(|| {
                panic!("plugin `{plugin}`: input `{name}` is not a field of its config")
            })
        })
        .collect()
}

/// The output ports of a plugin that returns `O`, one per field in field order, none
/// required.
pub fn output_ports<O: JsonSchema>() -> Vec<Port> {
    let schema = schema_of::<O>();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .keys()
        .filter_map(|name| Port::from_property(&schema, name))
        .map(|port| Port {
            required: false,
            ..port
        })
        .collect()
}

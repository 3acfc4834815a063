//! What a plugin tells mediaflow about itself, derived from its `Config` and `Output`
//! types the way the host derives a native plugin's.

use mediaflow_types::{input_ports, output_ports, schema_of};
use schemars::JsonSchema;
use serde_json::{json, Value};

use crate::bindings::mediaflow::plugin::types as wit;
use crate::{Port, ValueType};

fn value_type_to_wit(ty: ValueType) -> wit::ValueType {
    match ty {
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

fn port_to_wit(port: &Port) -> wit::Port {
    wit::Port {
        name: port.name.clone(),
        type_: value_type_to_wit(port.ty),
        required: port.required,
        description: port.description.clone(),
    }
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
        let ports = input_ports(&self.name, &self.config_schema, names);
        self.inputs.extend(ports);
        self
    }

    /// Sets the output ports from the struct the plugin returns, in field order.
    pub fn outputs_from<O: JsonSchema>(mut self) -> Self {
        self.outputs.extend(output_ports::<O>());
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
            inputs: self.inputs.iter().map(port_to_wit).collect(),
            outputs: self.outputs.iter().map(port_to_wit).collect(),
            cacheable: self.cacheable,
        }
    }
}

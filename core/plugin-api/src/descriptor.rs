use mediaflow_types::{input_ports, output_ports, schema_of, Port};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Permission;

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
    /// The plugin decodes concurrent calls together in its own process (continuous
    /// batching), so its calls wait on it rather than on the engine's cores: they count
    /// against [`Self::max_concurrency`] and a workflow's own `max_parallel`, not the
    /// engine's default one-step-per-core limit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub batches: bool,
    /// The sha256 of the plugin's code, for plugins whose identity is their code rather
    /// than the name and version they declare (WebAssembly components). It is part of
    /// [`Self::identity`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
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
            batches: false,
            digest: None,
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
        let ports = input_ports(&self.name, &self.config_schema, names);
        self.inputs.extend(ports);
        self
    }

    /// Sets the output ports from the struct the plugin returns.
    pub fn outputs_from<O: JsonSchema>(mut self) -> Self {
        self.outputs.extend(output_ports::<O>());
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

    /// Declares that the plugin batches concurrent calls itself (see [`Self::batches`]).
    pub fn batches(mut self) -> Self {
        self.batches = true;
        self
    }

    /// Who the plugin is, for cache keys and its key-value namespace: the name, and for a
    /// plugin with a [`Self::digest`] the digest too, so a component cannot pass for
    /// another by declaring its name.
    pub fn identity(&self) -> String {
        match &self.digest {
            Some(d) => format!("{}@sha256:{d}", self.name),
            None => self.name.clone(),
        }
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
    use crate::{ArtifactRef, ValueType};

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

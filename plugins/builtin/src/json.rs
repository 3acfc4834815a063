use mediaflow_plugin_api::{
    Descriptor, JsonSchema, Map, PluginError, RunContext, TypedPlugin, Value,
};
use serde::{Deserialize, Serialize};

/// Settings of `json.pick`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PickConfig {
    /// The JSON document (or a JSON string to parse).
    pub value: Value,
    /// `a.b.0.c` or a JSON pointer `/a/b/0/c`.
    pub path: String,
    /// Returned when the path is missing.
    #[serde(default, deserialize_with = "crate::present")]
    pub default: Option<Value>,
}

/// The outputs of `json.pick` and `json.merge`.
#[derive(Serialize, JsonSchema)]
pub struct ValueOutput {
    /// The picked (or merged) value.
    pub value: Value,
}

/// `json.pick`: takes one value out of a JSON document by dotted path or JSON pointer.
pub struct JsonPick(Descriptor);

impl Default for JsonPick {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonPick {
    pub fn new() -> Self {
        JsonPick(
            Descriptor::from_config::<PickConfig>(
                "json.pick",
                "1.0.0",
                "Pick a value out of JSON by path",
            )
            .inputs(["value"])
            .outputs_from::<ValueOutput>(),
        )
    }
}

fn pick<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(value);
    }
    if path.starts_with('/') {
        return value.pointer(path);
    }
    path.split('.').try_fold(value, |cur, part| match cur {
        Value::Object(m) => m.get(part),
        Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

#[async_trait::async_trait]
impl TypedPlugin for JsonPick {
    type Config = PickConfig;
    type Output = ValueOutput;

    fn descriptor(&self) -> &Descriptor {
        &self.0
    }

    async fn run(&self, c: PickConfig, _cx: &RunContext) -> Result<ValueOutput, PluginError> {
        let doc = match c.value {
            // A string holding JSON (e.g. an LLM's answer) is parsed first.
            Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
            v => v,
        };
        match (pick(&doc, &c.path), c.default) {
            (Some(v), _) => Ok(ValueOutput { value: v.clone() }),
            (None, Some(d)) => Ok(ValueOutput { value: d }),
            (None, None) => Err(PluginError::new(
                "path_not_found",
                format!("`{}` is not in the value", c.path),
            )
            .with_help("fix the path, or give `default:` for documents that may lack it")),
        }
    }
}

/// Settings of `json.merge`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeConfig {
    /// Objects to merge, in order.
    pub objects: Vec<Map<String, Value>>,
    /// Merge nested objects instead of replacing them.
    #[serde(default = "crate::yes")]
    pub deep: bool,
}

/// `json.merge`: merges objects, later ones winning; nested objects merge deeply.
pub struct JsonMerge(Descriptor);

impl Default for JsonMerge {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonMerge {
    pub fn new() -> Self {
        JsonMerge(
            Descriptor::from_config::<MergeConfig>(
                "json.merge",
                "1.0.0",
                "Merge JSON objects (later wins)",
            )
            .inputs(["objects"])
            .outputs_from::<ValueOutput>(),
        )
    }
}

fn merge(into: &mut Value, from: &Value, deep: bool) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(existing) if deep && existing.is_object() && v.is_object() => {
                        merge(existing, v, deep)
                    }
                    _ => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

#[async_trait::async_trait]
impl TypedPlugin for JsonMerge {
    type Config = MergeConfig;
    type Output = ValueOutput;

    fn descriptor(&self) -> &Descriptor {
        &self.0
    }

    async fn run(&self, c: MergeConfig, _cx: &RunContext) -> Result<ValueOutput, PluginError> {
        let mut out = Value::Object(Map::new());
        for obj in c.objects {
            merge(&mut out, &Value::Object(obj), c.deep);
        }
        Ok(ValueOutput { value: out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mediaflow_plugin_api::ValueType;
    use serde_json::json;

    #[test]
    fn picks_by_dots_and_pointers() {
        let v = json!({"a": {"b": [10, {"c": "x"}]}});
        assert_eq!(pick(&v, "a.b.1.c"), Some(&json!("x")));
        assert_eq!(pick(&v, "/a/b/0"), Some(&json!(10)));
        assert_eq!(pick(&v, "a.zz"), None);
    }

    #[test]
    fn deep_merge_keeps_nested_keys() {
        let mut a = json!({"x": {"y": 1, "z": 2}});
        merge(&mut a, &json!({"x": {"z": 3}, "w": true}), true);
        assert_eq!(a, json!({"x": {"y": 1, "z": 3}, "w": true}));
    }

    #[test]
    fn descriptors_come_from_the_config_structs() {
        let pick = JsonPick::new();
        let s = &pick.0.config_schema;
        assert_eq!(s["required"], json!(["value", "path"]));
        assert_eq!(s["additionalProperties"], json!(false));
        let port = pick.0.input_port("value").unwrap();
        assert_eq!((port.ty, port.required), (ValueType::Any, true));
        let merge = JsonMerge::new();
        assert_eq!(
            merge.0.config_schema["properties"]["deep"]["default"],
            json!(true)
        );
        assert_eq!(merge.0.input_port("objects").unwrap().ty, ValueType::List);
    }
}

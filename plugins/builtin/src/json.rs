use mediaflow_plugin_api::{Descriptor, Plugin, PluginError, Port, RunContext, Value, ValueType};
use serde_json::json;

use crate::str_field;

/// `json.pick`: takes one value out of a JSON document by dotted path or JSON pointer.
pub struct JsonPick {
    descriptor: Descriptor,
}

impl Default for JsonPick {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonPick {
    pub fn new() -> Self {
        JsonPick {
            descriptor: Descriptor::new("json.pick", "1.0.0", "Pick a value out of JSON by path")
                .input(Port::new("value", ValueType::Any).required())
                .output(Port::new("value", ValueType::Any))
                .schema(json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["value", "path"],
                    "properties": {
                        "value": {"description": "the JSON document (or a JSON string to parse)"},
                        "path": {"type": "string", "description": "`a.b.0.c` or a JSON pointer `/a/b/0/c`"},
                        "default": {"description": "returned when the path is missing"}
                    }
                })),
        }
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
impl Plugin for JsonPick {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    async fn run(&self, config: Value, _cx: &RunContext) -> Result<Value, PluginError> {
        let path = str_field(&config, "path")?;
        let doc = match config.get("value") {
            // A string holding JSON (e.g. an LLM's answer) is parsed first.
            Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
            Some(v) => v.clone(),
            None => Value::Null,
        };
        match (pick(&doc, path), config.get("default")) {
            (Some(v), _) => Ok(json!({ "value": v })),
            (None, Some(d)) => Ok(json!({ "value": d })),
            (None, None) => Err(PluginError::fatal(
                "path_not_found",
                format!("`{path}` is not in the value"),
            )
            .with_help("fix the path, or give `default:` for documents that may lack it")),
        }
    }
}

/// `json.merge`: merges objects, later ones winning; nested objects merge deeply.
pub struct JsonMerge {
    descriptor: Descriptor,
}

impl Default for JsonMerge {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonMerge {
    pub fn new() -> Self {
        JsonMerge {
            descriptor: Descriptor::new("json.merge", "1.0.0", "Merge JSON objects (later wins)")
                .input(Port::new("objects", ValueType::List).required())
                .output(Port::new("value", ValueType::Object))
                .schema(json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["objects"],
                    "properties": {
                        "objects": {"type": "array", "items": {"type": "object"}, "description": "objects to merge, in order"},
                        "deep": {"type": "boolean", "default": true, "description": "merge nested objects instead of replacing them"}
                    }
                })),
        }
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
impl Plugin for JsonMerge {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    async fn run(&self, config: Value, _cx: &RunContext) -> Result<Value, PluginError> {
        let deep = config.get("deep").and_then(Value::as_bool).unwrap_or(true);
        let mut out = json!({});
        for obj in config
            .get("objects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            merge(&mut out, obj, deep);
        }
        Ok(json!({ "value": out }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

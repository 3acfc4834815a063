use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The schema keyword that marks a value as a file (an artifact reference), so the port
/// derived from it has type `file`.
pub const FILE_KEYWORD: &str = "x-mediaflow-type";

/// A file in the artifact store, named by the sha256 of its bytes: a `file` input of the
/// workflow or an artifact from an earlier step. Steps pass these references, never the
/// bytes. A field of this type in a plugin's config is a `file` input port, in its output
/// a `file` output.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// Lowercase hex sha256 of the bytes.
    pub sha256: String,
    /// e.g. `text/plain`, `audio/wav`.
    pub media_type: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// The file name it was stored under, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ArtifactRef {
    /// Recognises a reference inside a JSON value: an object with a 64-digit hex `sha256`
    /// and a `media_type`.
    pub fn from_value(value: &Value) -> Option<ArtifactRef> {
        let obj = value.as_object()?;
        let sha = obj.get("sha256")?.as_str()?;
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        obj.get("media_type")?.as_str()?;
        ArtifactRef::deserialize(value).ok()
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Every reference inside `value`, in document order.
    pub fn find_all(value: &Value) -> Vec<ArtifactRef> {
        let mut out = Vec::new();
        let mut stack = vec![value];
        while let Some(v) = stack.pop() {
            if let Some(a) = ArtifactRef::from_value(v) {
                out.push(a);
                continue;
            }
            match v {
                Value::Array(items) => stack.extend(items.iter().rev()),
                Value::Object(map) => stack.extend(map.values().rev()),
                _ => {}
            }
        }
        out
    }

    /// Replaces each reference inside `value` with what `f` returns for it.
    pub fn replace_all(value: &mut Value, f: &mut impl FnMut(ArtifactRef) -> Value) {
        if let Some(a) = ArtifactRef::from_value(value) {
            *value = f(a);
            return;
        }
        match value {
            Value::Array(items) => items.iter_mut().for_each(|i| Self::replace_all(i, f)),
            Value::Object(map) => map.values_mut().for_each(|i| Self::replace_all(i, f)),
            _ => {}
        }
    }
}

impl JsonSchema for ArtifactRef {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "File".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            FILE_KEYWORD: "file",
            "description": "a file: a `file` input or an artifact from an earlier step",
            "required": ["sha256", "media_type"],
            "properties": {
                "sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
                "media_type": {"type": "string"},
                "size": {"type": "integer", "minimum": 0},
                "name": {"type": "string"}
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_and_replaces_nested_references() {
        let a = json!({"sha256": "a".repeat(64), "media_type": "text/plain", "size": 1});
        let b = json!({"sha256": "b".repeat(64), "media_type": "audio/wav", "size": 2});
        let mut v = json!({"x": [a, {"deep": b}], "n": 1, "not": {"sha256": "short"}});
        let found: Vec<String> = ArtifactRef::find_all(&v)
            .into_iter()
            .map(|r| r.media_type)
            .collect();
        assert_eq!(found, ["text/plain", "audio/wav"]);
        ArtifactRef::replace_all(&mut v, &mut |r| json!(r.size));
        assert_eq!(
            v,
            json!({"x": [1, {"deep": 2}], "n": 1, "not": {"sha256": "short"}})
        );
    }
}

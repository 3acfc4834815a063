//! Files: `file` inputs and artifacts, passed between steps by reference.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The schema keyword that marks a value as a file, so the port derived from it has type
/// `file`.
pub const FILE_KEYWORD: &str = "x-mediaflow-type";

/// A file in mediaflow's artifact store, named by the sha256 of its bytes: a `file` input
/// of the workflow or an artifact from an earlier step. Steps pass these references, never
/// the bytes; [`artifacts::read`](crate::artifacts::read) gets the bytes (with
/// `permissions: [artifacts]`), [`artifacts::write`](crate::artifacts::write) stores new
/// ones. A `File` field in `Config` is a `file` input port, in `Output` a `file` output.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct File {
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

impl File {
    /// Recognises a file reference inside a JSON value (a 64-digit hex `sha256` and a
    /// `media_type`), as the host does.
    pub fn from_value(value: &Value) -> Option<File> {
        let obj = value.as_object()?;
        let sha = obj.get("sha256")?.as_str()?;
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        obj.get("media_type")?.as_str()?;
        File::deserialize(value).ok()
    }
}

impl JsonSchema for File {
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

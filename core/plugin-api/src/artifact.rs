use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::PluginError;

/// A file in the artifact store, named by the sha256 of its bytes. Steps pass these
/// references, never the bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    pub sha256: String,
    pub media_type: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ArtifactRef {
    /// Recognises an artifact reference inside a JSON value.
    pub fn from_value(value: &Value) -> Option<ArtifactRef> {
        let obj = value.as_object()?;
        let sha = obj.get("sha256")?.as_str()?;
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        obj.get("media_type")?.as_str()?;
        serde_json::from_value(value.clone()).ok()
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The artifact store as a plugin sees it.
#[async_trait::async_trait]
pub trait Artifacts: Send + Sync {
    /// Stores bytes and returns their reference (storing the same bytes twice is free).
    async fn put_bytes(
        &self,
        bytes: &[u8],
        media_type: &str,
        name: Option<&str>,
    ) -> Result<ArtifactRef, PluginError>;

    /// Copies a file into the store.
    async fn put_file(
        &self,
        path: &Path,
        media_type: Option<&str>,
    ) -> Result<ArtifactRef, PluginError>;

    /// Where the artifact's bytes are on local disk (read-only for plugins).
    async fn path(&self, artifact: &ArtifactRef) -> Result<PathBuf, PluginError>;
}

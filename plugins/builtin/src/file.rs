use std::path::{Path, PathBuf};

use mediaflow_plugin_api::{
    ArtifactRef, ConfigIssue, Descriptor, Plugin, PluginError, Port, RunContext, Value, ValueType,
};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::str_field;

fn io_error(what: &str, path: &Path, e: std::io::Error) -> PluginError {
    let retryable = !matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
    );
    let err = PluginError::new("io", format!("cannot {what} {}: {e}", path.display()));
    PluginError { retryable, ..err }
}

/// `file.read`: reads a file as text, or copies it into the artifact store.
pub struct FileRead {
    descriptor: Descriptor,
}

impl Default for FileRead {
    fn default() -> Self {
        Self::new()
    }
}

impl FileRead {
    pub fn new() -> Self {
        FileRead {
            descriptor: Descriptor::new("file.read", "1.0.0", "Read a file as text or as an artifact")
                .input(Port::new("path", ValueType::String).required())
                .output(Port::new("text", ValueType::String).describe("with `as: text`"))
                .output(Port::new("file", ValueType::File).describe("with `as: artifact`"))
                .output(Port::new("bytes", ValueType::Integer))
                .capability("fs.read")
                .schema(json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["path"],
                    "properties": {
                        "path": {"type": "string", "description": "file path (relative paths start at the working directory)"},
                        "as": {"enum": ["text", "artifact"], "default": "text"},
                        "media_type": {"type": "string", "description": "media type of the artifact (guessed from the extension otherwise)"}
                    }
                })),
        }
    }
}

#[async_trait::async_trait]
impl Plugin for FileRead {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    async fn run(&self, config: Value, cx: &RunContext) -> Result<Value, PluginError> {
        let path = PathBuf::from(str_field(&config, "path")?);
        let mode = config.get("as").and_then(Value::as_str).unwrap_or("text");
        if mode == "artifact" {
            let media = config.get("media_type").and_then(Value::as_str);
            if let Err(e) = tokio::fs::metadata(&path).await {
                return Err(io_error("read", &path, e));
            }
            let artifact = cx.artifacts().put_file(&path, media).await?;
            return Ok(json!({ "file": artifact.to_value(), "bytes": artifact.size }));
        }
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| io_error("read", &path, e))?;
        let n = bytes.len();
        let text = String::from_utf8(bytes).map_err(|e| {
            PluginError::fatal(
                "not_utf8",
                format!(
                    "{} is not UTF-8 text (invalid byte at offset {})",
                    path.display(),
                    e.utf8_error().valid_up_to()
                ),
            )
            .with_help("read it with `as: artifact` to pass the raw bytes on")
        })?;
        Ok(json!({ "text": text, "bytes": n }))
    }
}

/// `file.write`: writes text or an artifact to a path.
pub struct FileWrite {
    descriptor: Descriptor,
}

impl Default for FileWrite {
    fn default() -> Self {
        Self::new()
    }
}

impl FileWrite {
    pub fn new() -> Self {
        FileWrite {
            descriptor: Descriptor::new("file.write", "1.0.0", "Write text or an artifact to a file")
                .input(Port::new("path", ValueType::String).required())
                .input(Port::new("content", ValueType::String))
                .input(Port::new("artifact", ValueType::File))
                .output(Port::new("path", ValueType::String))
                .output(Port::new("bytes", ValueType::Integer))
                .capability("fs.write")
                .not_cacheable()
                .schema(json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["path"],
                    "properties": {
                        "path": {"type": "string"},
                        "content": {"type": "string", "description": "text to write"},
                        "artifact": {"type": "object", "description": "an artifact to copy out of the store"},
                        "append": {"type": "boolean", "default": false},
                        "mkdirs": {"type": "boolean", "default": true, "description": "create missing parent directories"}
                    }
                })),
        }
    }
}

#[async_trait::async_trait]
impl Plugin for FileWrite {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn validate(&self, config: &Value) -> Result<(), Vec<ConfigIssue>> {
        match (config.get("content"), config.get("artifact")) {
            (Some(_), Some(_)) => Err(vec![ConfigIssue::new(
                "/artifact",
                "give `content` or `artifact`, not both",
            )]),
            (None, None) => Err(vec![ConfigIssue::new("", "nothing to write").with_help(
                "add `content:` (text) or `artifact:` (a file from an earlier step)",
            )]),
            _ => Ok(()),
        }
    }

    async fn run(&self, config: Value, cx: &RunContext) -> Result<Value, PluginError> {
        let path = PathBuf::from(str_field(&config, "path")?);
        let append = config
            .get("append")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let mkdirs = config
            .get("mkdirs")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let bytes: Vec<u8> = match (config.get("content"), config.get("artifact")) {
            (Some(Value::String(s)), _) => s.clone().into_bytes(),
            (_, Some(a)) => {
                let artifact = ArtifactRef::from_value(a).ok_or_else(|| {
                    PluginError::fatal("bad_config", "`artifact` is not an artifact reference")
                })?;
                let src = cx.artifact_path(&artifact).await?;
                tokio::fs::read(&src)
                    .await
                    .map_err(|e| io_error("read", &src, e))?
            }
            _ => {
                return Err(PluginError::fatal(
                    "bad_config",
                    "give `content` or `artifact`",
                ))
            }
        };
        if mkdirs {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| io_error("create directory", dir, e))?;
            }
        }
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&path)
            .await
            .map_err(|e| io_error("open", &path, e))?;
        f.write_all(&bytes)
            .await
            .map_err(|e| io_error("write", &path, e))?;
        f.flush().await.map_err(|e| io_error("write", &path, e))?;
        Ok(json!({ "path": path.display().to_string(), "bytes": bytes.len() }))
    }
}

use std::path::Path;

use mediaflow_plugin_api::{
    ArtifactRef, ConfigIssue, Descriptor, JsonSchema, PluginError, RunContext, TypedPlugin,
};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::confine::confine;

/// Largest file `file.read` reads as text unless `max_bytes` says otherwise: the text
/// becomes a step output, stored in the database.
const MAX_TEXT_BYTES: u64 = 16 << 20;

fn io_error(what: &str, path: &Path, e: std::io::Error) -> PluginError {
    let err = PluginError::new("io", format!("cannot {what} {}: {e}", path.display()));
    match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => err,
        _ => err.retryable(),
    }
}

/// How `file.read` returns the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReadAs {
    /// As UTF-8 text (`text` output).
    #[default]
    Text,
    /// Copied into the artifact store (`file` output), bytes untouched.
    Artifact,
}

/// Settings of `file.read`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadConfig {
    /// File path (relative paths start at the working directory).
    pub path: String,
    /// `text` or `artifact`.
    #[serde(default, rename = "as")]
    pub mode: ReadAs,
    /// Media type of the artifact (guessed from the extension otherwise).
    #[serde(default)]
    pub media_type: Option<String>,
    /// Refuse larger files (default: 16 MiB as text, no limit as an artifact).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_bytes: Option<u64>,
    /// Only read below this directory (inside MEDIAFLOW_FILES_ROOT, if that is set).
    #[serde(default)]
    pub root: Option<String>,
}

/// The outputs of `file.read`.
#[derive(Serialize, JsonSchema)]
pub struct ReadOutput {
    /// The file's text, with `as: text`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The file, with `as: artifact`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<ArtifactRef>,
    /// The file's size.
    pub bytes: u64,
}

/// `file.read`: reads a file as text, or copies it into the artifact store.
///
/// Not cacheable: its setting is a path, and the file behind a path changes. Steps that
/// use what it read are cached by that content.
pub struct FileRead(Descriptor);

impl Default for FileRead {
    fn default() -> Self {
        Self::new()
    }
}

impl FileRead {
    pub fn new() -> Self {
        FileRead(
            Descriptor::from_config::<ReadConfig>(
                "file.read",
                "1.0.0",
                "Read a file as text or as an artifact",
            )
            .inputs(["path"])
            .outputs_from::<ReadOutput>()
            .not_cacheable(),
        )
    }
}

#[async_trait::async_trait]
impl TypedPlugin for FileRead {
    type Config = ReadConfig;
    type Output = ReadOutput;

    fn descriptor(&self) -> &Descriptor {
        &self.0
    }

    async fn run(&self, c: ReadConfig, cx: &RunContext) -> Result<ReadOutput, PluginError> {
        let path = confine(&c.path, c.root.as_deref())?;
        let size = tokio::fs::metadata(&path)
            .await
            .map_err(|e| io_error("read", &path, e))?
            .len();
        let limit = match (c.max_bytes, c.mode) {
            (Some(n), _) => Some(n),
            (None, ReadAs::Text) => Some(MAX_TEXT_BYTES),
            (None, ReadAs::Artifact) => None,
        };
        if let Some(limit) = limit.filter(|&l| size > l) {
            return Err(PluginError::new(
                "too_large",
                format!(
                    "{} is {size} bytes, over the {limit}-byte limit",
                    path.display()
                ),
            )
            .with_help("raise `max_bytes:`, or read it `as: artifact` to pass it on unread"));
        }
        if c.mode == ReadAs::Artifact {
            let artifact = cx
                .artifacts()
                .put_file(&path, c.media_type.as_deref())
                .await?;
            return Ok(ReadOutput {
                text: None,
                bytes: artifact.size,
                file: Some(artifact),
            });
        }
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| io_error("read", &path, e))?;
        let n = bytes.len() as u64;
        let text = String::from_utf8(bytes).map_err(|e| {
            PluginError::new(
                "not_utf8",
                format!(
                    "{} is not UTF-8 text (invalid byte at offset {})",
                    path.display(),
                    e.utf8_error().valid_up_to()
                ),
            )
            .with_help("read it with `as: artifact` to pass the raw bytes on")
        })?;
        Ok(ReadOutput {
            text: Some(text),
            file: None,
            bytes: n,
        })
    }
}

/// Settings of `file.write`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteConfig {
    /// Where to write (relative paths start at the working directory).
    pub path: String,
    /// Text to write.
    #[serde(default)]
    pub content: Option<String>,
    /// An artifact to copy out of the store.
    #[serde(default)]
    pub artifact: Option<ArtifactRef>,
    /// Append instead of replacing the file.
    #[serde(default)]
    pub append: bool,
    /// Create missing parent directories.
    #[serde(default = "crate::yes")]
    pub mkdirs: bool,
    /// Only write below this directory (inside MEDIAFLOW_FILES_ROOT, if that is set).
    #[serde(default)]
    pub root: Option<String>,
}

/// The outputs of `file.write`.
#[derive(Serialize, JsonSchema)]
pub struct WriteOutput {
    /// The path written.
    pub path: String,
    /// Bytes written.
    pub bytes: u64,
}

/// `file.write`: writes text or an artifact to a path.
pub struct FileWrite(Descriptor);

impl Default for FileWrite {
    fn default() -> Self {
        Self::new()
    }
}

impl FileWrite {
    pub fn new() -> Self {
        FileWrite(
            Descriptor::from_config::<WriteConfig>(
                "file.write",
                "1.0.0",
                "Write text or an artifact to a file",
            )
            .inputs(["path", "content", "artifact"])
            .outputs_from::<WriteOutput>()
            .not_cacheable(),
        )
    }
}

#[async_trait::async_trait]
impl TypedPlugin for FileWrite {
    type Config = WriteConfig;
    type Output = WriteOutput;

    fn descriptor(&self) -> &Descriptor {
        &self.0
    }

    fn check(&self, c: &WriteConfig) -> Vec<ConfigIssue> {
        match (&c.content, &c.artifact) {
            (Some(_), Some(_)) => vec![ConfigIssue::new(
                "/artifact",
                "give `content` or `artifact`, not both",
            )],
            (None, None) => vec![ConfigIssue::new("", "nothing to write")
                .with_help("add `content:` (text) or `artifact:` (a file from an earlier step)")],
            _ => Vec::new(),
        }
    }

    async fn run(&self, c: WriteConfig, cx: &RunContext) -> Result<WriteOutput, PluginError> {
        let path = confine(&c.path, c.root.as_deref())?;
        let bytes: Vec<u8> = match (c.content, &c.artifact) {
            (Some(s), _) => s.into_bytes(),
            (None, Some(artifact)) => {
                let src = cx.artifact_path(artifact).await?;
                tokio::fs::read(&src)
                    .await
                    .map_err(|e| io_error("read", &src, e))?
            }
            (None, None) => {
                return Err(PluginError::new(
                    "bad_config",
                    "give `content` or `artifact`",
                ))
            }
        };
        if c.mkdirs {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| io_error("create directory", dir, e))?;
            }
        }
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(c.append)
            .truncate(!c.append)
            .open(&path)
            .await
            .map_err(|e| io_error("open", &path, e))?;
        f.write_all(&bytes)
            .await
            .map_err(|e| io_error("write", &path, e))?;
        f.flush().await.map_err(|e| io_error("write", &path, e))?;
        Ok(WriteOutput {
            path: path.display().to_string(),
            bytes: bytes.len() as u64,
        })
    }
}

use std::path::{Path, PathBuf};

use crate::{ArtifactRef, PluginError};

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

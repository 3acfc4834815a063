use std::path::{Path, PathBuf};

use mediaflow_plugin_api::{ArtifactRef, Artifacts, PluginError};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::{Store, StoreError};

/// Files stored once by sha256 under `root/ab/abcdef…`, indexed in the database.
#[derive(Clone, Debug)]
pub struct ArtifactStore {
    root: PathBuf,
    db: Store,
}

pub(crate) fn io_err(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn to_plugin_error(e: StoreError) -> PluginError {
    PluginError::new("artifact_store", e.to_string()).retryable()
}

/// A media type guessed from a file name's extension.
pub fn guess_media_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "wav" => "audio/wav",
        "mp3" => "audio/mpeg",
        "flac" => "audio/flac",
        "ogg" | "oga" => "audio/ogg",
        "m4a" => "audio/mp4",
        "aif" | "aiff" => "audio/aiff",
        "mp4" => "video/mp4",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "srt" => "application/x-subrip",
        "vtt" => "text/vtt",
        "txt" | "md" => "text/plain",
        "json" => "application/json",
        "yaml" | "yml" => "application/yaml",
        "html" | "htm" => "text/html",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

impl ArtifactStore {
    pub fn new(root: PathBuf, db: Store) -> Self {
        ArtifactStore { root, db }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn db(&self) -> &Store {
        &self.db
    }

    fn blob_path(&self, sha: &str) -> PathBuf {
        // A reference read from input may name anything: only a hex digest is a file here.
        if sha.len() < 2 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return self.root.join("not-a-sha256");
        }
        self.root.join(&sha[..2]).join(sha)
    }

    pub(crate) async fn commit(
        &self,
        tmp: tempfile::TempPath,
        sha: String,
        size: u64,
        media_type: &str,
        name: Option<&str>,
    ) -> Result<ArtifactRef, StoreError> {
        let dest = self.blob_path(&sha);
        if tokio::fs::metadata(&dest).await.is_err() {
            let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| io_err(&dir, e))?;
            tmp.persist(&dest).map_err(|e| io_err(&dest, e.error))?;
        }
        self.db
            .put_artifact_row(&sha, media_type, size, &dest.display().to_string())
            .await?;
        Ok(ArtifactRef {
            sha256: sha,
            media_type: media_type.to_owned(),
            size,
            name: name.map(str::to_owned),
        })
    }

    pub(crate) fn temp_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        std::fs::create_dir_all(&self.root).map_err(|e| io_err(&self.root, e))?;
        tempfile::NamedTempFile::new_in(&self.root).map_err(|e| io_err(&self.root, e))
    }

    pub async fn store_bytes(
        &self,
        bytes: &[u8],
        media_type: &str,
        name: Option<&str>,
    ) -> Result<ArtifactRef, StoreError> {
        let sha = hex::encode(Sha256::digest(bytes));
        let tmp = self.temp_file()?;
        let (file, tmp_path) = tmp.into_parts();
        drop(file);
        tokio::fs::write(&tmp_path, bytes)
            .await
            .map_err(|e| io_err(&tmp_path, e))?;
        self.commit(tmp_path, sha, bytes.len() as u64, media_type, name)
            .await
    }

    /// Copies a file into the store, hashing it as it streams.
    pub async fn store_file(
        &self,
        path: &Path,
        media_type: Option<&str>,
    ) -> Result<ArtifactRef, StoreError> {
        let mut src = tokio::fs::File::open(path)
            .await
            .map_err(|e| io_err(path, e))?;
        let tmp = self.temp_file()?;
        let (file, tmp_path) = tmp.into_parts();
        let mut dst = tokio::fs::File::from_std(file);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = src.read(&mut buf).await.map_err(|e| io_err(path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
            tokio::io::AsyncWriteExt::write_all(&mut dst, &buf[..n])
                .await
                .map_err(|e| io_err(&tmp_path, e))?;
        }
        tokio::io::AsyncWriteExt::flush(&mut dst)
            .await
            .map_err(|e| io_err(&tmp_path, e))?;
        drop(dst);
        let sha = hex::encode(hasher.finalize());
        let media_type = media_type.unwrap_or_else(|| guess_media_type(path));
        let name = path.file_name().and_then(|n| n.to_str());
        self.commit(tmp_path, sha, size, media_type, name).await
    }

    /// Where `artifact` is in this store. Only this store's own directory counts: the
    /// index in the database is shared by every data dir that uses it (the workers of a
    /// distributed run), and a file under another data dir is not this store's to read,
    /// even when it happens to be on the same machine.
    pub async fn locate(&self, artifact: &ArtifactRef) -> Result<PathBuf, StoreError> {
        let own = self.blob_path(&artifact.sha256);
        if tokio::fs::metadata(&own).await.is_ok() {
            return Ok(own);
        }
        if let Some(p) = self.db.artifact_path(&artifact.sha256).await? {
            let p = PathBuf::from(p);
            if p.starts_with(&self.root) && tokio::fs::metadata(&p).await.is_ok() {
                return Ok(p);
            }
        }
        Err(StoreError::ArtifactNotFound(artifact.sha256.clone()))
    }
}

#[async_trait::async_trait]
impl Artifacts for ArtifactStore {
    async fn put_bytes(
        &self,
        bytes: &[u8],
        media_type: &str,
        name: Option<&str>,
    ) -> Result<ArtifactRef, PluginError> {
        self.store_bytes(bytes, media_type, name)
            .await
            .map_err(to_plugin_error)
    }

    async fn put_file(
        &self,
        path: &Path,
        media_type: Option<&str>,
    ) -> Result<ArtifactRef, PluginError> {
        self.store_file(path, media_type)
            .await
            .map_err(to_plugin_error)
    }

    async fn path(&self, artifact: &ArtifactRef) -> Result<PathBuf, PluginError> {
        self.locate(artifact).await.map_err(to_plugin_error)
    }
}

//! Artifact bytes in the run database, so that every worker of a distributed run can reach
//! every artifact whatever machine made it. A coordinator publishes the artifacts a queued
//! step reads; a worker fetches them into its own artifact store (a cache by sha256: what it
//! has it never fetches again) and publishes what the step made; the coordinator fetches
//! the outputs back.
//!
//! Chunks of [`CHUNK`] bytes are written one statement each, then the `artifact_blobs` row:
//! a blob is complete only with that row, so a writer that dies half-way leaves chunks that
//! the next publish overwrites. A fetched blob is checked against its sha256 before it is
//! kept.

use mediaflow_plugin_api::ArtifactRef;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::artifacts::{io_err, ArtifactStore};
use crate::sql::Store;
use crate::{now_ms, Result, StoreError};

/// Bytes per chunk: one row, one statement.
const CHUNK: usize = 1 << 20;

impl Store {
    /// Whether the blob `sha256` is in the database, complete.
    pub async fn has_blob(&self, sha256: &str) -> Result<bool> {
        let row = self
            .retry(|| {
                sqlx::query("SELECT 1 FROM artifact_blobs WHERE sha256 = $1")
                    .bind(sha256)
                    .fetch_optional(&self.pool)
            })
            .await?;
        Ok(row.is_some())
    }

    async fn put_chunk(&self, sha256: &str, idx: i64, data: &[u8]) -> Result<()> {
        self.retry(|| {
            sqlx::query(
                "INSERT INTO artifact_chunks (sha256, idx, data) VALUES ($1, $2, $3) \
                 ON CONFLICT (sha256, idx) DO UPDATE SET data = excluded.data",
            )
            .bind(sha256)
            .bind(idx)
            .bind(data)
            .execute(&self.pool)
        })
        .await?;
        Ok(())
    }

    async fn blob_chunks(&self, sha256: &str) -> Result<Option<i64>> {
        let row = self
            .retry(|| {
                sqlx::query("SELECT chunks FROM artifact_blobs WHERE sha256 = $1")
                    .bind(sha256)
                    .fetch_optional(&self.pool)
            })
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    async fn chunk(&self, sha256: &str, idx: i64) -> Result<Option<Vec<u8>>> {
        let row = self
            .retry(|| {
                sqlx::query("SELECT data FROM artifact_chunks WHERE sha256 = $1 AND idx = $2")
                    .bind(sha256)
                    .bind(idx)
                    .fetch_optional(&self.pool)
            })
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }
}

impl ArtifactStore {
    /// Puts `artifact`'s bytes in the database, unless they are there already.
    pub async fn publish(&self, artifact: &ArtifactRef) -> Result<()> {
        let db = self.db();
        if db.has_blob(&artifact.sha256).await? {
            return Ok(());
        }
        let path = self.locate(artifact).await?;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| io_err(&path, e))?;
        let mut buf = vec![0u8; CHUNK];
        let (mut idx, mut size) = (0i64, 0u64);
        loop {
            let n = read_full(&mut file, &mut buf)
                .await
                .map_err(|e| io_err(&path, e))?;
            if n == 0 && idx > 0 {
                break;
            }
            db.put_chunk(&artifact.sha256, idx, &buf[..n]).await?;
            idx += 1;
            size += n as u64;
            if n < CHUNK {
                break;
            }
        }
        db.retry(|| {
            sqlx::query(
                "INSERT INTO artifact_blobs (sha256, size, chunks, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(&artifact.sha256)
            .bind(size as i64)
            .bind(idx)
            .bind(now_ms())
            .execute(&db.pool)
        })
        .await?;
        Ok(())
    }

    /// Makes `artifact` present in this store: at once if it is, else fetched from the
    /// database and checked against its sha256.
    pub async fn fetch(&self, artifact: &ArtifactRef) -> Result<()> {
        if self.locate(artifact).await.is_ok() {
            return Ok(());
        }
        let db = self.db();
        let Some(chunks) = db.blob_chunks(&artifact.sha256).await? else {
            return Err(StoreError::ArtifactNotFound(artifact.sha256.clone()));
        };
        let (tmp, path) = self.temp_file()?.into_parts();
        let mut out = tokio::fs::File::from_std(tmp);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        for idx in 0..chunks {
            let data = db
                .chunk(&artifact.sha256, idx)
                .await?
                .ok_or_else(|| StoreError::ArtifactNotFound(artifact.sha256.clone()))?;
            hasher.update(&data);
            size += data.len() as u64;
            out.write_all(&data).await.map_err(|e| io_err(&path, e))?;
        }
        out.flush().await.map_err(|e| io_err(&path, e))?;
        drop(out);
        let sha = hex::encode(hasher.finalize());
        if sha != artifact.sha256 {
            return Err(StoreError::Io {
                path: path.display().to_string(),
                source: std::io::Error::other(format!(
                    "the database's copy of artifact {} has sha256 {sha}",
                    artifact.sha256
                )),
            });
        }
        self.commit(
            path,
            sha,
            size,
            &artifact.media_type,
            artifact.name.as_deref(),
        )
        .await?;
        Ok(())
    }
}

/// Reads until `buf` is full or the file ends.
async fn read_full(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let got = file.read(&mut buf[n..]).await?;
        if got == 0 {
            break;
        }
        n += got;
    }
    Ok(n)
}

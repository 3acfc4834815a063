//! Embedding collections: vectors by (collection, id), each collection for one embedding
//! model, with a revision that changes on every write.

use serde_json::Value;
use sqlx::Row;

use crate::sql::Store;
use crate::{now_ms, Result, StoreError};

/// What a collection holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectionInfo {
    pub model_sha256: String,
    pub model_name: String,
    pub dims: usize,
    /// Changes on every write.
    pub revision: i64,
}

/// One vector to store.
#[derive(Clone, Debug)]
pub struct EmbeddingRow<'a> {
    pub id: &'a str,
    pub vector: &'a [f32],
    pub text: Option<&'a str>,
    pub metadata: &'a Value,
}

/// A stored vector's text and metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingDetails {
    pub text: Option<String>,
    pub metadata: Value,
}

fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

impl Store {
    /// The collection's model, size of its vectors and revision, if it exists.
    pub async fn embedding_collection(&self, collection: &str) -> Result<Option<CollectionInfo>> {
        let row = self
            .retry(|| {
                sqlx::query(
                    "SELECT model_sha256, model_name, dims, revision FROM embedding_collections \
                     WHERE collection = $1",
                )
                .bind(collection)
                .fetch_optional(&self.pool)
            })
            .await?;
        let Some(r) = row else { return Ok(None) };
        let dims: i64 = r.try_get(2)?;
        Ok(Some(CollectionInfo {
            model_sha256: r.try_get(0)?,
            model_name: r.try_get(1)?,
            dims: usize::try_from(dims).unwrap_or(0),
            revision: r.try_get(3)?,
        }))
    }

    /// Stores `rows` in `collection` (made for `model` on first use) in one transaction.
    /// A collection made for another model or vector size is refused and left as it was.
    pub async fn embeddings_upsert(
        &self,
        collection: &str,
        model: &CollectionInfo,
        rows: &[EmbeddingRow<'_>],
        run: (&str, &str),
    ) -> Result<()> {
        let (run_id, step_id) = run;
        let refused = self
            .retry(|| async move {
                let now = now_ms();
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO embedding_collections \
                     (collection, model_sha256, model_name, dims, revision, updated_at) \
                     VALUES ($1, $2, $3, $4, 0, $5) ON CONFLICT (collection) DO NOTHING",
                )
                .bind(collection)
                .bind(&model.model_sha256)
                .bind(&model.model_name)
                .bind(model.dims as i64)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let r = sqlx::query(
                    "SELECT model_sha256, model_name, dims FROM embedding_collections \
                     WHERE collection = $1",
                )
                .bind(collection)
                .fetch_one(&mut *tx)
                .await?;
                let (sha, name, dims): (String, String, i64) =
                    (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
                if sha != model.model_sha256 || dims != model.dims as i64 {
                    tx.rollback().await?;
                    return Ok(Some((name, sha, dims)));
                }
                for row in rows {
                    sqlx::query(
                        "INSERT INTO embeddings \
                         (collection, id, vector, text, metadata, run_id, step_id, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                         ON CONFLICT (collection, id) DO UPDATE SET vector = excluded.vector, \
                         text = excluded.text, metadata = excluded.metadata, \
                         run_id = excluded.run_id, step_id = excluded.step_id, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(collection)
                    .bind(row.id)
                    .bind(to_bytes(row.vector))
                    .bind(row.text)
                    .bind(row.metadata.to_string())
                    .bind(run_id)
                    .bind(step_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query(
                    "UPDATE embedding_collections SET revision = revision + 1, updated_at = $2 \
                     WHERE collection = $1",
                )
                .bind(collection)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(None)
            })
            .await?;
        match refused {
            None => Ok(()),
            Some((name, sha, dims)) => Err(StoreError::EmbeddingModel {
                collection: collection.to_owned(),
                stored: format!("{name} (sha256 {}…, {dims} dimensions)", short(&sha)),
                given: format!(
                    "{} (sha256 {}…, {} dimensions)",
                    model.model_name,
                    short(&model.model_sha256),
                    model.dims
                ),
            }),
        }
    }

    /// Every vector of `collection` with its id, in id order, and the revision read.
    pub async fn embeddings_all(&self, collection: &str) -> Result<Vec<(String, Vec<f32>)>> {
        let rows = self
            .retry(|| {
                sqlx::query("SELECT id, vector FROM embeddings WHERE collection = $1 ORDER BY id")
                    .bind(collection)
                    .fetch_all(&self.pool)
            })
            .await?;
        rows.into_iter()
            .map(|r| {
                let id: String = r.try_get(0)?;
                let bytes: Vec<u8> = r.try_get(1)?;
                Ok((id, from_bytes(&bytes)))
            })
            .collect()
    }

    /// The text and metadata stored with `id`.
    pub async fn embedding_details(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<Option<EmbeddingDetails>> {
        let row = self
            .retry(|| {
                sqlx::query(
                    "SELECT text, metadata FROM embeddings WHERE collection = $1 AND id = $2",
                )
                .bind(collection)
                .bind(id)
                .fetch_optional(&self.pool)
            })
            .await?;
        let Some(r) = row else { return Ok(None) };
        let text: Option<String> = r.try_get(0)?;
        let metadata: String = r.try_get(1)?;
        let metadata = serde_json::from_str(&metadata).map_err(|source| StoreError::Corrupt {
            what: format!("the metadata of embedding `{id}` in `{collection}`"),
            source,
        })?;
        Ok(Some(EmbeddingDetails { text, metadata }))
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

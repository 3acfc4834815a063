//! Embedding collections for plugins (`RunContext::vectors`), kept in the run database and
//! searched in memory: a snapshot per collection, reloaded when its revision changes.

mod index;

use std::collections::HashMap;
use std::sync::Arc;

use mediaflow_plugin_api::{
    EmbeddingModel, PluginError, SearchMode, SearchResult, VectorHit, VectorRecord, Vectors,
};
use mediaflow_store::{CollectionInfo, EmbeddingRow, Store, StoreError};

pub use index::{normalised, Snapshot, EXACT_BELOW};

/// The longest collection name and id, and the most vectors one call may store.
const MAX_NAME: usize = 256;
const MAX_RECORDS: usize = 10_000;
/// The largest `k` a search may ask for.
pub const MAX_K: usize = 1_000;

/// Snapshots of the collections searched so far, shared by every run of an engine.
#[derive(Default)]
pub struct Collections {
    snapshots: tokio::sync::Mutex<HashMap<String, Arc<Snapshot>>>,
}

/// The collections as one step sees them: writes are recorded with its run and step.
pub struct StoreVectors {
    pub store: Store,
    pub collections: Arc<Collections>,
    pub run_id: String,
    pub step_id: String,
}

fn store_error(e: StoreError) -> PluginError {
    match e {
        StoreError::EmbeddingModel { .. } => PluginError::new("wrong_model", e.to_string())
            .with_help("search and store a collection with the model that made it, or use another collection name"),
        e => PluginError::new("store", format!("embedding store: {e}")).retryable(),
    }
}

fn check_name(what: &str, name: &str) -> Result<(), PluginError> {
    if name.trim().is_empty() || name.len() > MAX_NAME {
        return Err(PluginError::new(
            "bad_input",
            format!("{what} must be 1 to {MAX_NAME} bytes long (got {:?})", name),
        ));
    }
    Ok(())
}

fn info_of(model: &EmbeddingModel) -> CollectionInfo {
    CollectionInfo {
        model_sha256: model.sha256.clone(),
        model_name: model.name.clone(),
        dims: model.dims,
        revision: 0,
    }
}

impl StoreVectors {
    /// The snapshot of `collection` at its current revision (read again if it changed).
    async fn snapshot(
        &self,
        collection: &str,
        info: &CollectionInfo,
    ) -> Result<Arc<Snapshot>, PluginError> {
        let mut snapshots = self.collections.snapshots.lock().await;
        if let Some(s) = snapshots.get(collection) {
            if s.revision == info.revision {
                return Ok(s.clone());
            }
        }
        let rows = self
            .store
            .embeddings_all(collection)
            .await
            .map_err(store_error)?;
        let s = Arc::new(Snapshot::new(info.revision, info.dims, rows));
        snapshots.insert(collection.to_owned(), s.clone());
        Ok(s)
    }
}

#[async_trait::async_trait]
impl Vectors for StoreVectors {
    async fn upsert(
        &self,
        collection: &str,
        model: &EmbeddingModel,
        records: Vec<VectorRecord>,
    ) -> Result<(), PluginError> {
        check_name("a collection name", collection)?;
        if records.len() > MAX_RECORDS {
            return Err(PluginError::new(
                "bad_input",
                format!("at most {MAX_RECORDS} vectors can be stored at once"),
            ));
        }
        for r in &records {
            check_name("an embedding id", &r.id)?;
            if r.vector.len() != model.dims || r.vector.iter().any(|x| !x.is_finite()) {
                return Err(PluginError::new(
                    "bad_input",
                    format!(
                        "vector `{}` must have {} finite numbers (the model's size); it has {}",
                        r.id,
                        model.dims,
                        r.vector.len()
                    ),
                ));
            }
        }
        let unit: Vec<Vec<f32>> = records
            .iter()
            .map(|r| index::normalised(&r.vector))
            .collect();
        let rows: Vec<EmbeddingRow> = records
            .iter()
            .zip(&unit)
            .map(|(r, v)| EmbeddingRow {
                id: &r.id,
                vector: v,
                text: r.text.as_deref(),
                metadata: &r.metadata,
            })
            .collect();
        self.store
            .embeddings_upsert(
                collection,
                &info_of(model),
                &rows,
                (&self.run_id, &self.step_id),
            )
            .await
            .map_err(store_error)
    }

    async fn search(
        &self,
        collection: &str,
        model: &EmbeddingModel,
        query: &[f32],
        k: usize,
        mode: SearchMode,
    ) -> Result<SearchResult, PluginError> {
        check_name("a collection name", collection)?;
        let info = self
            .store
            .embedding_collection(collection)
            .await
            .map_err(store_error)?
            .ok_or_else(|| {
                PluginError::new(
                    "no_collection",
                    format!("there is no embedding collection `{collection}`"),
                )
                .with_help(format!(
                    "store vectors in it first: a `text.embed` step with `store: {{ collection: {collection} }}`"
                ))
            })?;
        if info.model_sha256 != model.sha256 || info.dims != model.dims {
            return Err(store_error(StoreError::EmbeddingModel {
                collection: collection.to_owned(),
                stored: format!("{} ({} dimensions)", info.model_name, info.dims),
                given: format!("{} ({} dimensions)", model.name, model.dims),
            }));
        }
        if query.len() != info.dims {
            return Err(PluginError::new(
                "bad_input",
                format!(
                    "the query has {} numbers; the collection's vectors have {}",
                    query.len(),
                    info.dims
                ),
            ));
        }
        let k = k.clamp(1, MAX_K);
        let snapshot = self.snapshot(collection, &info).await?;
        let mode = match mode {
            SearchMode::Auto if snapshot.len() < EXACT_BELOW => SearchMode::Exact,
            SearchMode::Auto => SearchMode::Approximate,
            m => m,
        };
        let q = index::normalised(query);
        let s = snapshot.clone();
        let found = tokio::task::spawn_blocking(move || match mode {
            SearchMode::Exact => s.exact(&q, k),
            _ => s.approximate(&q, k),
        })
        .await
        .map_err(|e| PluginError::new("panic", format!("the search failed: {e}")))?;
        let mut hits = Vec::with_capacity(found.len());
        for (i, score) in found {
            let id = &snapshot.ids[i];
            let details = self
                .store
                .embedding_details(collection, id)
                .await
                .map_err(store_error)?;
            // A row deleted since the snapshot was read is left out.
            if let Some(d) = details {
                hits.push(VectorHit {
                    id: id.clone(),
                    score: f64::from(score),
                    text: d.text,
                    metadata: d.metadata,
                });
            }
        }
        Ok(SearchResult {
            hits,
            mode,
            size: snapshot.len(),
        })
    }
}

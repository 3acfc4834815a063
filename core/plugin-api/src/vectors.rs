//! Stored embeddings as a plugin sees them: collections of vectors the host keeps in the run
//! database, written by `text.embed` (`store:`) and searched by `text.search`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::PluginError;

/// The embedding model a collection's vectors come from. A collection holds one model's
/// vectors; writing or searching it with another is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbeddingModel {
    /// What the user called it (`minilm-l6`, a path), for messages.
    pub name: String,
    /// The model file's sha256: what identifies it.
    pub sha256: String,
    pub dims: usize,
}

/// One vector to store under `id` (an existing `id` is replaced).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VectorRecord {
    pub id: String,
    pub vector: Vec<f32>,
    /// The text the vector was made from, returned with search hits.
    #[serde(default)]
    pub text: Option<String>,
    /// Anything the workflow wants back with a hit (title, URL, section).
    #[serde(default)]
    pub metadata: Value,
}

/// How a search finds neighbours.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    /// Exact for small collections, approximate for large ones.
    #[default]
    Auto,
    /// Every vector compared: slow on large collections, never misses.
    Exact,
    /// An approximate nearest-neighbour index (HNSW): fast, may miss a few.
    Approximate,
}

/// One search result, best first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VectorHit {
    pub id: String,
    /// Cosine similarity in [−1, 1].
    pub score: f64,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub metadata: Value,
}

/// What a search did: its hits, and how it found them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchResult {
    pub hits: Vec<VectorHit>,
    /// `exact` or `approximate`, as chosen for `auto`.
    pub mode: SearchMode,
    /// How many vectors the collection holds.
    pub size: usize,
}

/// The host's embedding collections.
#[async_trait::async_trait]
pub trait Vectors: Send + Sync {
    /// Stores `records` in `collection` (made on first use, for `model`).
    async fn upsert(
        &self,
        collection: &str,
        model: &EmbeddingModel,
        records: Vec<VectorRecord>,
    ) -> Result<(), PluginError>;

    /// The `k` vectors of `collection` most similar to `query` (cosine).
    async fn search(
        &self,
        collection: &str,
        model: &EmbeddingModel,
        query: &[f32],
        k: usize,
        mode: SearchMode,
    ) -> Result<SearchResult, PluginError>;
}

//! Embedding collections from workflows: `text.embed`'s `store:` option writes a text's
//! vector into a collection the host keeps in the run database; `text.search` finds the
//! stored texts nearest to a query.

use std::sync::Arc;

use mediaflow_plugin_api::{
    ConfigIssue, Descriptor, EmbeddingModel, JsonSchema, PluginError, RunContext, SearchMode,
    TypedPlugin, Value, VectorRecord, Vectors,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::embed::TextModel;
use crate::runtime::{Loaded, Runtime, TextInput};
use crate::text_plugin::DEFAULT_EMBEDDING;

fn yes() -> bool {
    true
}

/// `text.embed`'s `store:`: where the vector goes.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreTo {
    /// The collection (made on first use, for this step's model; one model per collection).
    pub collection: String,
    /// The vector's id in the collection; storing an id again replaces it (default: the
    /// sha256 of the text, so the same text is stored once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Returned with search hits (title, URL, section …).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub metadata: Value,
    /// Keep the text with the vector, to return it with hits.
    #[serde(default = "yes")]
    pub keep_text: bool,
}

pub(crate) fn vectors(cx: &RunContext) -> Result<&Arc<dyn Vectors>, PluginError> {
    cx.vectors()
        .ok_or_else(|| PluginError::new("not_offered", "this host keeps no embedding collections"))
}

pub(crate) fn identity(model: &Loaded<TextModel>, dims: usize) -> EmbeddingModel {
    EmbeddingModel {
        name: model.name.clone(),
        sha256: model.sha256.clone(),
        dims,
    }
}

/// Stores `vector` as `to` says; returns its id.
pub(crate) async fn store(
    to: &StoreTo,
    model: &Loaded<TextModel>,
    text: &str,
    vector: &[f32],
    cx: &RunContext,
) -> Result<String, PluginError> {
    let id = match &to.id {
        Some(id) => id.clone(),
        None => hex::encode(Sha256::digest(text.as_bytes())),
    };
    let record = VectorRecord {
        id: id.clone(),
        vector: vector.to_vec(),
        text: to.keep_text.then(|| text.to_owned()),
        metadata: to.metadata.clone(),
    };
    vectors(cx)?
        .upsert(&to.collection, &identity(model, vector.len()), vec![record])
        .await?;
    Ok(id)
}

fn default_model() -> String {
    DEFAULT_EMBEDDING.to_owned()
}

fn default_k() -> usize {
    10
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchSettings {
    /// What to look for, in words (or a UTF-8 text file).
    pub query: TextInput,
    /// The collection `text.embed` steps stored vectors in.
    pub collection: String,
    /// The embedding model: the one the collection was made with (another is refused).
    #[serde(default = "default_model")]
    pub model: String,
    /// A tokenizer.json for a model the catalog does not know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<String>,
    /// How many hits (at most 1000).
    #[serde(default = "default_k")]
    pub k: usize,
    /// `auto` (exact below 200,000 vectors, else approximate), `exact` or `approximate`
    /// (an HNSW index, built on first use).
    #[serde(default)]
    pub mode: SearchMode,
    /// Hits less similar than this (cosine) are left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_score: Option<f64>,
}

/// One stored text near the query.
#[derive(Serialize, JsonSchema)]
pub struct Hit {
    pub id: String,
    /// Cosine similarity to the query.
    pub score: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub metadata: Value,
}

/// The outputs of `text.search`.
#[derive(Serialize, JsonSchema)]
pub struct Found {
    /// Best first.
    pub hits: Vec<Hit>,
    /// The hits' ids, best first.
    pub ids: Vec<String>,
    /// `exact` or `approximate`.
    pub mode: SearchMode,
    /// How many vectors the collection holds.
    pub searched: usize,
}

pub struct Search {
    descriptor: Descriptor,
    runtime: Arc<Runtime>,
}

impl Search {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Search {
            descriptor: Descriptor::from_config::<SearchSettings>(
                "text.search",
                "1.0.0",
                "The stored texts most similar to a query (cosine over text.embed vectors; exact, or HNSW on large collections)",
            )
            .inputs(["query"])
            .outputs_from::<Found>()
            .max_concurrency(16)
            .batches()
            // The collection changes between runs; a cached answer would be stale.
            .not_cacheable(),
            runtime,
        }
    }
}

#[async_trait::async_trait]
impl TypedPlugin for Search {
    type Config = SearchSettings;
    type Output = Found;

    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn check(&self, settings: &SearchSettings) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if !(1..=1000).contains(&settings.k) {
            issues.push(ConfigIssue::new("/k", "`k` must be 1 to 1000"));
        }
        if settings.collection.trim().is_empty() {
            issues.push(ConfigIssue::new("/collection", "name a collection"));
        }
        issues
    }

    async fn run(&self, settings: SearchSettings, cx: &RunContext) -> Result<Found, PluginError> {
        let query = settings.query.read(cx).await?;
        let model = self
            .runtime
            .text_model(&settings.model, settings.tokenizer.as_deref())
            .await?;
        let e = self.runtime.embed(&model, &query).await?;
        let found = vectors(cx)?
            .search(
                &settings.collection,
                &identity(&model, e.vector.len()),
                &e.vector,
                settings.k,
                settings.mode,
            )
            .await?;
        let min = settings.min_score.unwrap_or(f64::NEG_INFINITY);
        let hits: Vec<Hit> = found
            .hits
            .into_iter()
            .filter(|h| h.score >= min)
            .map(|h| Hit {
                id: h.id,
                score: h.score,
                text: h.text,
                metadata: h.metadata,
            })
            .collect();
        Ok(Found {
            ids: hits.iter().map(|h| h.id.clone()).collect(),
            hits,
            mode: found.mode,
            searched: found.size,
        })
    }
}

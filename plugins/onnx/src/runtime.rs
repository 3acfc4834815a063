//! What the plugins of this process share: loaded models, the batching threads, turning a
//! step's `model:` into a file with its catalog settings, and reading a step's text.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mediaflow_models::ModelStore;
use mediaflow_plugin_api::{ArtifactRef, JsonSchema, PluginError, RunContext};
use serde::{Deserialize, Serialize};

use crate::batch::Batcher;
use crate::classify::ImageModel;
use crate::embed::{self, TextError, TextModel, Window};
use crate::head::HeadError;
use crate::image::{ImageError, Preprocess};
use crate::model::{self, Cache, ModelError};

/// Texts up to this size are accepted (a long feature is ~100 KB).
const MAX_TEXT_BYTES: usize = 4 << 20;

/// The most windows (text) or images one model call takes.
const MAX_BATCH: usize = 32;

type ImageJob = (Arc<ImageModel>, Vec<f32>);
type TextJob = (Arc<Loaded<TextModel>>, Arc<Window>);
/// One job's result: its row of the model's output, or the batch's error.
type Row = Result<Vec<f32>, String>;

/// A loaded model with the sha256 of its file.
pub struct Loaded<T> {
    pub model: T,
    pub sha256: String,
    /// The step's `model:` it was loaded for.
    pub name: String,
}

pub struct Runtime {
    images: Cache<ImageModel>,
    texts: Cache<Loaded<TextModel>>,
    image_batch: Batcher<ImageJob, Row>,
    text_batch: Batcher<TextJob, Row>,
}

/// A batch function over the jobs of one model (the batcher groups them so): the model's
/// rows, or its error for every job.
fn per_model<M, X>(
    run: impl Fn(&M, Vec<X>) -> Result<Vec<Vec<f32>>, ModelError> + Send + Sync,
) -> impl Fn(Vec<(Arc<M>, X)>) -> Vec<Row> + Send + Sync {
    move |jobs| {
        let count = jobs.len();
        let Some(model) = jobs.first().map(|(m, _)| m.clone()) else {
            return Vec::new();
        };
        let inputs = jobs.into_iter().map(|(_, x)| x).collect();
        match run(&model, inputs) {
            Ok(rows) => rows.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e.to_string()); count],
        }
    }
}

/// A model file and what the catalog says about using it.
pub struct Resolved {
    pub path: PathBuf,
    pub settings: serde_json::Value,
    pub store: ModelStore,
}

impl Runtime {
    pub fn new() -> Arc<Runtime> {
        // One worker per core (MEDIAFLOW_ONNX_THREADS to change it): each runs its own
        // batch single-threaded, so concurrent items use every core.
        let workers = std::env::var("MEDIAFLOW_ONNX_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        Arc::new(Runtime {
            images: Cache::new(3),
            texts: Cache::new(3),
            image_batch: Batcher::start(
                "onnx-images",
                workers,
                MAX_BATCH,
                per_model(|m: &ImageModel, inputs: Vec<Vec<f32>>| m.run(&inputs)),
                Err,
            ),
            text_batch: Batcher::start(
                "onnx-text",
                workers,
                MAX_BATCH,
                per_model(|m: &Loaded<TextModel>, windows: Vec<Arc<Window>>| {
                    let windows: Vec<&Window> = windows.iter().map(Arc::as_ref).collect();
                    m.model.pool(&windows)
                }),
                Err,
            ),
        })
    }

    /// The file for a step's `model:` and its catalog settings.
    pub fn resolve(model: &str) -> Result<Resolved, PluginError> {
        let store = ModelStore::open(ModelStore::env_dir())?;
        let path = store.resolve(model)?;
        Ok(Resolved {
            path,
            settings: store.settings(model),
            store,
        })
    }

    /// The image model at `path` for `prep`, loaded once (off the async threads).
    pub async fn image_model(
        self: &Arc<Self>,
        path: PathBuf,
        prep: Preprocess,
    ) -> Result<Arc<ImageModel>, PluginError> {
        let me = self.clone();
        // The same file with other preprocessing is another input shape: another model.
        let key = format!(
            "{}#{}",
            path.display(),
            serde_json::to_string(&prep).unwrap_or_default()
        );
        blocking(move || me.images.get(&key, || ImageModel::load(&path, prep)))
            .await?
            .map_err(model_error)
    }

    /// Class probabilities for one prepared image, batched with concurrent calls.
    pub async fn classify(
        &self,
        model: &Arc<ImageModel>,
        input: Vec<f32>,
    ) -> Result<Vec<f32>, PluginError> {
        self.image_batch
            .call(model::key(model), (model.clone(), input))
            .await
            .ok_or_else(gone)?
            .map_err(|e| PluginError::new("inference", e))
    }

    /// The text model `name` (a catalog name or a path), with its tokenizer.
    pub async fn text_model(
        self: &Arc<Self>,
        name: &str,
        tokenizer: Option<&str>,
    ) -> Result<Arc<Loaded<TextModel>>, PluginError> {
        let resolved = Runtime::resolve(name)?;
        let tokenizer = match tokenizer {
            Some(t) => PathBuf::from(t),
            None => match resolved.store.companion(name, "tokenizer")? {
                Some(t) => t,
                None => beside(&resolved.path, "tokenizer.json").ok_or_else(|| {
                    PluginError::new(
                        "bad_config",
                        format!(
                            "no tokenizer for {}: give `tokenizer:` (a tokenizer.json)",
                            resolved.path.display()
                        ),
                    )
                })?,
            },
        };
        let output = resolved.settings["output"].as_str().map(str::to_owned);
        let max_tokens = resolved.settings["max_tokens"].as_u64().unwrap_or(128) as usize;
        let me = self.clone();
        let name = name.to_owned();
        blocking(move || {
            let path = resolved.path;
            me.texts.get(&path.display().to_string(), || {
                let model = TextModel::load(&path, &tokenizer, output.as_deref(), max_tokens)?;
                let sha256 = mediaflow_models::sha256_file(&path)
                    .map_err(|e| TextError::Tokenize(e.to_string()))?;
                Ok::<_, TextError>(Loaded {
                    model,
                    sha256,
                    name,
                })
            })
        })
        .await?
        .map_err(text_error)
    }

    /// The L2-normalised embedding of `text` and its window count and token count.
    pub async fn embed(
        &self,
        model: &Arc<Loaded<TextModel>>,
        text: &str,
    ) -> Result<Embedded, PluginError> {
        let windows: Vec<Arc<Window>> = model
            .model
            .windows(text)
            .map_err(text_error)?
            .into_iter()
            .map(Arc::new)
            .collect();
        let calls = windows.iter().map(|w| {
            self.text_batch
                .call(model::key(model), (model.clone(), w.clone()))
        });
        let mut pooled = Vec::with_capacity(windows.len());
        for r in futures::future::join_all(calls).await {
            pooled.push(
                r.ok_or_else(gone)?
                    .map_err(|e| PluginError::new("inference", e))?,
            );
        }
        let lengths: Vec<usize> = windows.iter().map(|w| w.ids.len()).collect();
        Ok(Embedded {
            vector: embed::combine(&lengths, &pooled),
            windows: windows.len(),
            tokens: windows.iter().map(|w| w.ids.len()).sum(),
        })
    }
}

pub struct Embedded {
    pub vector: Vec<f32>,
    pub windows: usize,
    pub tokens: usize,
}

fn gone() -> PluginError {
    PluginError::new("inference", "the model thread is gone").retryable()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PluginError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PluginError::new("panic", format!("loading the model failed: {e}")))
}

fn beside(model: &Path, name: &str) -> Option<PathBuf> {
    let p = model.parent()?.join(name);
    p.is_file().then_some(p)
}

pub fn model_error(e: ModelError) -> PluginError {
    let err = PluginError::new(e.code(), e.to_string());
    match &e {
        ModelError::Shape { .. } => err.with_help(
            "this model takes other input; check `model:` (and `preprocess:` for images)",
        ),
        _ => err,
    }
}

pub fn text_error(e: TextError) -> PluginError {
    match e {
        TextError::Model(m) => model_error(m),
        TextError::Empty => PluginError::new("empty_text", "the text is empty")
            .with_help("check the expression that gives `text`; a `when:` can skip empty ones"),
        other => PluginError::new(other.code(), other.to_string()),
    }
}

pub fn image_error(e: ImageError) -> PluginError {
    let err = PluginError::new(e.code(), e.to_string());
    match e {
        ImageError::Io { .. } => err.retryable(),
        _ => err,
    }
}

pub fn head_error(e: HeadError) -> PluginError {
    match e {
        HeadError::WrongEmbedding { .. } => PluginError::new("wrong_head", e.to_string())
            .with_help(
                "use the `model:` the head was trained with, or train the head again on this model",
            ),
        HeadError::Read { .. } => PluginError::new("bad_head", e.to_string()),
    }
}

/// A step's text: written in the workflow (or an expression), or a file.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TextInput {
    File(ArtifactRef),
    Text(String),
}

impl TextInput {
    /// The text, read from its file if it is one (which must be UTF-8).
    pub async fn read(&self, cx: &RunContext) -> Result<String, PluginError> {
        match self {
            TextInput::Text(t) => {
                if t.len() > MAX_TEXT_BYTES {
                    return Err(too_long(t.len()));
                }
                Ok(t.clone())
            }
            TextInput::File(a) => {
                let path = cx.artifact_path(a).await?;
                let label = a
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("artifact {}", &a.sha256[..12.min(a.sha256.len())]));
                let bytes = tokio::fs::read(&path)
                    .await
                    .map_err(|e| PluginError::new("io", format!("{label}: {e}")).retryable())?;
                if bytes.len() > MAX_TEXT_BYTES {
                    return Err(too_long(bytes.len()));
                }
                String::from_utf8(bytes).map_err(|e| {
                    PluginError::new(
                        "bad_text",
                        format!(
                            "{label} is not UTF-8 text (invalid byte at offset {})",
                            e.utf8_error().valid_up_to()
                        ),
                    )
                    .with_help("convert it first, e.g. `iconv -f latin1 -t utf-8`")
                })
            }
        }
    }
}

fn too_long(len: usize) -> PluginError {
    PluginError::new(
        "text_too_long",
        format!("the text is {len} bytes; the limit is {MAX_TEXT_BYTES}"),
    )
}

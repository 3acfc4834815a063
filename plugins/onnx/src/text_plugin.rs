//! `text.embed`, `text.classify` and `text.sentiment`: sentence embeddings, and softmax
//! heads over them.

use std::collections::BTreeMap;
use std::sync::Arc;

use mediaflow_plugin_api::{
    ConfigIssue, Descriptor, JsonSchema, PluginError, RunContext, TypedPlugin,
};
use serde::{Deserialize, Serialize};

use crate::head::{argmax, Head};
use crate::runtime::{head_error, Runtime, TextInput};
use crate::search_plugin::StoreTo;

/// The embedding model `text.embed` uses when a step names none.
pub const DEFAULT_EMBEDDING: &str = "minilm-l6";

/// The sentiment head `text.sentiment` uses when a step names none (see
/// `plugins/onnx/heads/README.md`).
pub const SENTIMENT_HEAD: &str = include_str!("../heads/sentiment-minilm-l6.json");

fn default_model() -> String {
    DEFAULT_EMBEDDING.to_owned()
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedSettings {
    /// The text (or a UTF-8 text file).
    pub text: TextInput,
    /// A sentence-embedding model: `minilm-l6` (default), `minilm-l3`, or a path.
    #[serde(default = "default_model")]
    pub model: String,
    /// A tokenizer.json for a model the catalog does not know (default: `tokenizer.json`
    /// beside the model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<String>,
    /// Also store the vector in a collection that `text.search` can search:
    /// `store: { collection: news, id: "${{ item.id }}", metadata: { title: … } }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreTo>,
}

/// The outputs of `text.embed`.
#[derive(Serialize, JsonSchema)]
pub struct Embedding {
    /// The unit-length sentence embedding (cosine similarity is a dot product).
    pub embedding: Vec<f32>,
    pub dims: usize,
    /// The `model:` that made it.
    pub model: String,
    /// Tokens read, special tokens included.
    pub tokens: usize,
    /// Windows the text was cut into (more than 1 for texts longer than the model's limit).
    pub windows: usize,
    /// With `store:`, the id the vector was stored under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored: Option<String>,
}

pub struct Embed {
    descriptor: Descriptor,
    runtime: Arc<Runtime>,
}

impl Embed {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Embed {
            descriptor: Descriptor::from_config::<EmbedSettings>(
                "text.embed",
                "1.0.0",
                "Sentence embeddings (ONNX on tract): mean-pooled, L2-normalised; long texts are chunked",
            )
            .inputs(["text"])
            .outputs_from::<Embedding>()
            .max_concurrency(16)
            .batches(),
            runtime,
        }
    }
}

#[async_trait::async_trait]
impl TypedPlugin for Embed {
    type Config = EmbedSettings;
    type Output = Embedding;

    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    async fn run(
        &self,
        settings: EmbedSettings,
        cx: &RunContext,
    ) -> Result<Embedding, PluginError> {
        let text = settings.text.read(cx).await?;
        let model = self
            .runtime
            .text_model(&settings.model, settings.tokenizer.as_deref())
            .await?;
        let e = self.runtime.embed(&model, &text).await?;
        let stored = match &settings.store {
            Some(to) => Some(crate::search_plugin::store(to, &model, &text, &e.vector, cx).await?),
            None => None,
        };
        Ok(Embedding {
            stored,
            dims: e.vector.len(),
            embedding: e.vector,
            model: settings.model,
            tokens: e.tokens,
            windows: e.windows,
        })
    }
}

/// Label probabilities from a head over the text's embedding.
async fn score(
    runtime: &Arc<Runtime>,
    head: &Head,
    head_name: &str,
    model: Option<&str>,
    text: &str,
) -> Result<Vec<f32>, PluginError> {
    let name = model.unwrap_or(&head.embedding.model);
    let loaded = runtime.text_model(name, None).await?;
    head.check_embedding(head_name, name, &loaded.sha256)
        .map_err(head_error)?;
    let e = runtime.embed(&loaded, text).await?;
    Ok(head.predict(&e.vector))
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassifyTextSettings {
    /// The text (or a UTF-8 text file).
    pub text: TextInput,
    /// A head file made by `mediaflow train classifier`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// Without a head: zero-shot labels, each with a short description of what belongs
    /// under it (`sport: "football, cricket, match, league, coach"`). The text's embedding
    /// is compared with each description's; `threshold` picks the labels returned as tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Zero-shot only: labels whose cosine similarity to the text is at least this are
    /// returned in `tags`.
    #[serde(default = "default_tag_threshold")]
    pub threshold: f64,
    /// The embedding model (default: the one the head was trained on; another is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

fn default_tag_threshold() -> f64 {
    0.25
}

/// The outputs of `text.classify`.
#[derive(Serialize, JsonSchema)]
pub struct TextClass {
    pub label: String,
    pub score: f64,
    /// Every label's probability (with a head) or cosine similarity (zero-shot).
    pub scores: BTreeMap<String, f64>,
    /// Zero-shot: every label at or above `threshold`, best first; with a head: `label`.
    pub tags: Vec<String>,
}

pub struct ClassifyText {
    descriptor: Descriptor,
    runtime: Arc<Runtime>,
}

impl ClassifyText {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        ClassifyText {
            descriptor: Descriptor::from_config::<ClassifyTextSettings>(
                "text.classify",
                "1.0.0",
                "Classify text with a head trained by `mediaflow train classifier` over text.embed vectors",
            )
            .inputs(["text"])
            .outputs_from::<TextClass>()
            .max_concurrency(16)
            .batches(),
            runtime,
        }
    }
}

impl ClassifyText {
    /// Labels by the cosine similarity of the text's embedding to each label's description.
    async fn zero_shot(
        &self,
        settings: &ClassifyTextSettings,
        text: &str,
    ) -> Result<TextClass, PluginError> {
        let name = settings.model.as_deref().unwrap_or(DEFAULT_EMBEDDING);
        let model = self.runtime.text_model(name, None).await?;
        let e = self.runtime.embed(&model, text).await?;
        // All descriptions at once, so they share model calls.
        let described: Vec<String> = settings
            .labels
            .iter()
            .map(|(label, description)| format!("{label}: {description}"))
            .collect();
        let embedded =
            futures::future::join_all(described.iter().map(|d| self.runtime.embed(&model, d)))
                .await;
        let mut scored = Vec::with_capacity(described.len());
        for (label, d) in settings.labels.keys().zip(embedded) {
            let d = d?;
            scored.push((
                label.clone(),
                f64::from(crate::embed::cosine(&e.vector, &d.vector)),
            ));
        }
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        let (label, score) = scored[0].clone();
        Ok(TextClass {
            tags: scored
                .iter()
                .filter(|(_, s)| *s >= settings.threshold)
                .map(|(l, _)| l.clone())
                .collect(),
            label,
            score,
            scores: scored.into_iter().collect(),
        })
    }
}

fn ranked(head: &Head, probs: &[f32]) -> (String, f64, BTreeMap<String, f64>) {
    let best = argmax(probs);
    let scores = head
        .labels
        .iter()
        .zip(probs)
        .map(|(l, p)| (l.clone(), f64::from(*p)))
        .collect();
    (head.labels[best].clone(), f64::from(probs[best]), scores)
}

#[async_trait::async_trait]
impl TypedPlugin for ClassifyText {
    type Config = ClassifyTextSettings;
    type Output = TextClass;

    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn check(&self, settings: &ClassifyTextSettings) -> Vec<ConfigIssue> {
        match (&settings.head, settings.labels.len()) {
            (None, 0) => vec![ConfigIssue::new(
                "",
                "give `head:` (a trained head file) or `labels:` (zero-shot)",
            )],
            (Some(_), n) if n > 0 => vec![ConfigIssue::new(
                "/labels",
                "give `head:` or `labels:`, not both",
            )],
            (None, 1) => vec![ConfigIssue::new(
                "/labels",
                "zero-shot classification needs at least 2 labels",
            )],
            (Some(h), _) if !h.contains("${{") => match Head::read(std::path::Path::new(h)) {
                Ok(_) => Vec::new(),
                Err(e) => vec![ConfigIssue::new("/head", e.to_string()).with_help(
                    "train one with `mediaflow train classifier --data FILE.tsv --out HEAD`",
                )],
            },
            _ => Vec::new(),
        }
    }

    async fn run(
        &self,
        settings: ClassifyTextSettings,
        cx: &RunContext,
    ) -> Result<TextClass, PluginError> {
        let text = settings.text.read(cx).await?;
        let Some(head_path) = &settings.head else {
            return self.zero_shot(&settings, &text).await;
        };
        let head = Head::read(std::path::Path::new(head_path)).map_err(head_error)?;
        let probs = score(
            &self.runtime,
            &head,
            head_path,
            settings.model.as_deref(),
            &text,
        )
        .await?;
        let (label, score, scores) = ranked(&head, &probs);
        Ok(TextClass {
            tags: vec![label.clone()],
            label,
            score,
            scores,
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SentimentSettings {
    /// The text (or a UTF-8 text file).
    pub text: TextInput,
    /// A head with the labels negative, neutral and positive (default: the built-in one,
    /// trained on human-rated movie and product review snippets over `minilm-l6`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// `head` (default: the embedding head, fast) or `llm` (zero-shot: a language model
    /// through `llm.generate` scores the three labels as the answer to a question about
    /// the text; slower, and only as good as the model).
    #[serde(default)]
    pub engine: SentimentEngine,
    /// `engine: llm` only: the GGUF model (default `smollm2-135m-instruct`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_model: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SentimentEngine {
    #[default]
    Head,
    Llm,
}

/// The model `engine: llm` uses when a step names none.
pub const SENTIMENT_LLM: &str = "smollm2-135m-instruct";

/// The label probabilities a language model gives, scoring the labels as its answer.
async fn llm_sentiment(
    settings: &SentimentSettings,
    text: &str,
    cx: &RunContext,
) -> Result<BTreeMap<String, f64>, PluginError> {
    let llm = cx.llm().ok_or_else(|| {
        PluginError::new(
            "not_offered",
            "this host offers no text generation for `engine: llm`",
        )
    })?;
    let request = serde_json::json!({
        "model": settings.llm_model.as_deref().unwrap_or(SENTIMENT_LLM),
        "system": "You judge the sentiment of texts that readers write. Answer with one word: negative, neutral or positive.",
        "prompt": format!("Text: {text}\n\nIs the sentiment of this text negative, neutral or positive?"),
        "choices": SENTIMENT_LABELS,
        "temperature": 0.0,
        "max_tokens": 1,
    });
    let out = llm.generate(request, cx).await?;
    let scores: BTreeMap<String, f64> = out
        .get("choices")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .ok_or_else(|| {
            PluginError::new(
                "bad_answer",
                "llm.generate did not score the labels (it needs `choices`: a newer mediaflow-llm)",
            )
        })?;
    for want in SENTIMENT_LABELS {
        if !scores.contains_key(want) {
            return Err(PluginError::new(
                "bad_answer",
                format!("llm.generate's scores have no `{want}`"),
            ));
        }
    }
    Ok(scores)
}

/// The outputs of `text.sentiment`.
#[derive(Serialize, JsonSchema)]
pub struct Sentiment {
    /// `negative`, `neutral` or `positive`.
    pub label: String,
    /// Each label's probability.
    pub scores: BTreeMap<String, f64>,
    /// P(positive) − P(negative), in [−1, 1].
    pub compound: f64,
}

pub struct SentimentPlugin {
    descriptor: Descriptor,
    runtime: Arc<Runtime>,
    builtin: Result<Head, String>,
}

const SENTIMENT_LABELS: [&str; 3] = ["negative", "neutral", "positive"];

impl SentimentPlugin {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        SentimentPlugin {
            descriptor: Descriptor::from_config::<SentimentSettings>(
                "text.sentiment",
                "1.0.0",
                "Sentiment of a text: negative / neutral / positive with probabilities and a compound score in [-1, 1]",
            )
            .inputs(["text"])
            .outputs_from::<Sentiment>()
            .max_concurrency(16)
            .batches(),
            runtime,
            builtin: Head::parse(SENTIMENT_HEAD, "the built-in sentiment head").map_err(|e| e.to_string()),
        }
    }

    fn head(&self, settings: &SentimentSettings) -> Result<(Head, String), PluginError> {
        let (head, name) = match &settings.head {
            Some(path) => (
                Head::read(std::path::Path::new(path)).map_err(head_error)?,
                path.clone(),
            ),
            None => (
                self.builtin
                    .clone()
                    .map_err(|e| PluginError::new("bad_head", e))?,
                "the built-in sentiment head".to_owned(),
            ),
        };
        for want in SENTIMENT_LABELS {
            if !head.labels.iter().any(|l| l == want) {
                return Err(PluginError::new(
                    "bad_head",
                    format!("{name} has the labels {:?}; a sentiment head needs negative, neutral and positive", head.labels),
                ));
            }
        }
        Ok((head, name))
    }
}

#[async_trait::async_trait]
impl TypedPlugin for SentimentPlugin {
    type Config = SentimentSettings;
    type Output = Sentiment;

    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn check(&self, settings: &SentimentSettings) -> Vec<ConfigIssue> {
        if settings.engine == SentimentEngine::Llm {
            return match settings.head {
                Some(_) => vec![ConfigIssue::new(
                    "/head",
                    "`head` is for `engine: head`; `engine: llm` uses `llm_model`",
                )],
                None => Vec::new(),
            };
        }
        if settings.llm_model.is_some() {
            return vec![
                ConfigIssue::new("/llm_model", "`llm_model` is for `engine: llm`")
                    .with_help("add `engine: llm`"),
            ];
        }
        match &settings.head {
            Some(h) if h.contains("${{") => Vec::new(),
            _ => match self.head(settings) {
                Ok(_) => Vec::new(),
                Err(e) => vec![ConfigIssue::new("/head", e.message)],
            },
        }
    }

    async fn run(
        &self,
        settings: SentimentSettings,
        cx: &RunContext,
    ) -> Result<Sentiment, PluginError> {
        let text = settings.text.read(cx).await?;
        let scores = match settings.engine {
            SentimentEngine::Llm => llm_sentiment(&settings, &text, cx).await?,
            SentimentEngine::Head => {
                let (head, name) = self.head(&settings)?;
                let probs = score(&self.runtime, &head, &name, None, &text).await?;
                ranked(&head, &probs).2
            }
        };
        let label = scores
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(l, _)| l.clone())
            .unwrap_or_default();
        let compound = scores["positive"] - scores["negative"];
        Ok(Sentiment {
            label,
            scores,
            compound,
        })
    }
}

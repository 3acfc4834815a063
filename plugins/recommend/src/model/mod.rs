//! The models, their settings, and the trained recommender that `recommend.train` writes as
//! an artifact and `recommend.rank` reads.

mod als;
mod content;
mod hybrid;
mod itemknn;
mod popularity;

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use als::{Als, AlsParams};
pub use content::{Content, ContentParams};
pub use hybrid::{Hybrid, HybridParams, HybridWeights};
pub use itemknn::{top_k, ItemKnn, ItemKnnParams};
pub use popularity::{Popularity, PopularityParams};

use crate::data::{Dataset, History, Ids, ItemMeta, KindWeights};

/// Which model to train.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Freshness-weighted popularity: the same list for everyone.
    Popularity,
    /// Item–item collaborative filtering.
    Itemknn,
    /// Matrix factorisation (implicit ALS).
    Als,
    /// Content-based: text vectors, sections and tags.
    Content,
    /// All of them blended, with fallbacks for new users and new items.
    #[default]
    Hybrid,
}

impl ModelKind {
    pub const ALL: [ModelKind; 5] = [
        ModelKind::Popularity,
        ModelKind::Itemknn,
        ModelKind::Als,
        ModelKind::Content,
        ModelKind::Hybrid,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Popularity => "popularity",
            ModelKind::Itemknn => "itemknn",
            ModelKind::Als => "als",
            ModelKind::Content => "content",
            ModelKind::Hybrid => "hybrid",
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Every hyper-parameter, as a step's `with:` gives them.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// `hybrid` (default), `als`, `itemknn`, `content` or `popularity`.
    pub model: ModelKind,
    pub popularity: PopularityParams,
    pub itemknn: ItemKnnParams,
    pub als: AlsParams,
    pub content: ContentParams,
    pub hybrid: HybridParams,
    /// How much each kind of event counts (`{view: 1, like: 3, share: 5}`); others count 1.
    pub kind_weights: KindWeights,
}

/// A trained model.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Model {
    Popularity(Popularity),
    Itemknn(ItemKnn),
    Als(Als),
    Content(Content),
    Hybrid(Box<Hybrid>),
}

/// One recommendation for a reader.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Recommendation {
    pub item: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub score: f32,
    /// Why, in words a reader understands ("because you read …").
    pub reason: String,
}

/// Why an item was recommended, before it is put into words.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Why {
    Popular,
    /// Because the user read this item.
    BecauseRead(u32),
    /// Its text is like this item's.
    SimilarTo(u32),
    /// For you (a factor model with nothing to point at).
    ForYou,
}

/// What a ranking call needs to know of the reader.
pub struct Reader<'a> {
    /// The user's index in the model, if they were in the training data.
    pub user: Option<u32>,
    pub history: &'a History,
}

impl Model {
    pub fn fit(data: &Dataset, config: &TrainConfig, text: &HashMap<String, Vec<f32>>) -> Model {
        match config.model {
            ModelKind::Popularity => Model::Popularity(Popularity::fit(data, &config.popularity)),
            ModelKind::Itemknn => Model::Itemknn(ItemKnn::fit(&data.matrix(), &config.itemknn)),
            ModelKind::Als => Model::Als(Als::fit(&data.matrix(), &config.als)),
            ModelKind::Content => Model::Content(Content::fit(data, text, &config.content)),
            ModelKind::Hybrid => Model::Hybrid(Box::new(Hybrid::fit(data, config, text))),
        }
    }

    pub fn kind(&self) -> ModelKind {
        match self {
            Model::Popularity(_) => ModelKind::Popularity,
            Model::Itemknn(_) => ModelKind::Itemknn,
            Model::Als(_) => ModelKind::Als,
            Model::Content(_) => ModelKind::Content,
            Model::Hybrid(_) => ModelKind::Hybrid,
        }
    }

    /// Adds every item's score for `reader` to `out` (one slot per item).
    pub fn score(&self, reader: &Reader, out: &mut [f32]) {
        match self {
            Model::Popularity(m) => m.score(reader.history, out),
            Model::Itemknn(m) => m.score(reader.history, out),
            Model::Als(m) => m.score(reader.user, reader.history, out),
            Model::Content(m) => m.score(reader.history, out),
            Model::Hybrid(m) => m.score(reader, out),
        }
    }

    /// Why each of `items` is on `reader`'s list.
    pub fn why(&self, reader: &Reader, items: &[u32]) -> Vec<Why> {
        let read = |i: Option<u32>| i.map(Why::BecauseRead);
        let h = reader.history;
        match self {
            Model::Hybrid(m) => m.why(reader, items),
            Model::Popularity(_) => vec![Why::Popular; items.len()],
            Model::Itemknn(m) => items
                .iter()
                .map(|&i| read(m.because(h, i)).unwrap_or(Why::Popular))
                .collect(),
            Model::Als(m) => items
                .iter()
                .map(|&i| read(m.because(h, i)).unwrap_or(Why::ForYou))
                .collect(),
            Model::Content(m) => items
                .iter()
                .map(|&i| m.because(h, i).map(Why::SimilarTo).unwrap_or(Why::ForYou))
                .collect(),
        }
    }

    /// The popularity component, for reasons about popularity.
    fn popularity(&self) -> Option<&Popularity> {
        match self {
            Model::Popularity(p) => Some(p),
            Model::Hybrid(h) => Some(&h.popularity),
            _ => None,
        }
    }
}

/// What the artifact starts with, so a file of something else is refused.
const MAGIC: &[u8; 8] = b"MFRECv1\n";

/// Why a model file or a request cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RecommendError {
    #[error("not a mediaflow recommender model (it does not start with `MFRECv1`)")]
    NotAModel,
    #[error("the model file is damaged: {0}")]
    Corrupt(String),
    #[error("item `{0}` is not in the model's catalogue")]
    UnknownItem(String),
}

/// A trained recommender: the model and what it was trained on (ids, catalogue, each
/// user's events, so what they have read is not recommended again).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recommender {
    /// `hybrid-20261205T020000Z-100000`: the model, when it was trained, on how many events.
    pub version: String,
    pub trained_at: i64,
    /// The newest event it learnt from (Unix ms).
    pub latest_event: i64,
    pub events: usize,
    pub users: Ids,
    pub items: Ids,
    pub catalogue: Vec<ItemMeta>,
    /// By user.
    pub histories: Vec<History>,
    pub model: Model,
}

impl Recommender {
    pub fn train(
        data: &Dataset,
        config: &TrainConfig,
        text: &HashMap<String, Vec<f32>>,
        now: i64,
    ) -> Recommender {
        let model = Model::fit(data, config, text);
        let stamp = chrono::DateTime::from_timestamp_millis(now)
            .map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
            .unwrap_or_else(|| now.to_string());
        Recommender {
            version: format!("{}-{stamp}-{}", model.kind(), data.events.len()),
            trained_at: now,
            latest_event: data.latest(),
            events: data.events.len(),
            users: data.users.clone(),
            items: data.items.clone(),
            catalogue: data.catalogue.clone(),
            histories: data.histories(),
            model,
        }
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, RecommendError> {
        let mut out = MAGIC.to_vec();
        postcard::to_io(self, &mut out).map_err(|e| RecommendError::Corrupt(e.to_string()))?;
        Ok(out)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Recommender, RecommendError> {
        let body = bytes.strip_prefix(MAGIC).ok_or(RecommendError::NotAModel)?;
        let mut r: Recommender =
            postcard::from_bytes(body).map_err(|e| RecommendError::Corrupt(e.to_string()))?;
        r.users.reindex();
        r.items.reindex();
        if r.catalogue.len() != r.items.len() || r.histories.len() != r.users.len() {
            return Err(RecommendError::Corrupt(
                "its catalogue or histories do not match its ids".into(),
            ));
        }
        Ok(r)
    }

    /// The `k` best items for `reader`, leaving out `exclude`; with reasons when `explain`.
    pub fn rank(&self, reader: &Reader, k: usize, exclude: &[u32], explain: bool) -> Ranked {
        let mut scores = vec![0f32; self.items.len()];
        self.model.score(reader, &mut scores);
        for &i in exclude {
            if let Some(s) = scores.get_mut(i as usize) {
                *s = f32::NEG_INFINITY;
            }
        }
        let mut best: Vec<(u32, f32)> = scores
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_finite())
            .map(|(i, s)| (i as u32, *s))
            .collect();
        top_k(&mut best, k);
        let why = if explain {
            let items: Vec<u32> = best.iter().map(|b| b.0).collect();
            self.model.why(reader, &items)
        } else {
            Vec::new()
        };
        Ranked { best, why }
    }

    /// The top `k` for the user called `user`: one the model knows gets their own list
    /// without what they have read; one it does not know gets the fallback (popular and
    /// fresh).
    pub fn recommend(&self, user: &str, k: usize) -> Vec<Recommendation> {
        self.recommend_excluding(user, k, &[])
    }

    /// As [`Recommender::recommend`], also leaving out `also` (items read since training).
    pub fn recommend_excluding(&self, user: &str, k: usize, also: &[u32]) -> Vec<Recommendation> {
        let empty = History::default();
        let (index, history) = match self.users.get(user) {
            Some(u) => (Some(u), &self.histories[u as usize]),
            None => (None, &empty),
        };
        let seen: Vec<u32> = history.items().chain(also.iter().copied()).collect();
        let reader = Reader {
            user: index,
            history,
        };
        self.explain(&reader, self.rank(&reader, k, &seen, true))
    }

    /// "More like this": items like `item`, by whatever the model knows of it.
    pub fn more_like(&self, item: &str, k: usize) -> Result<Vec<Recommendation>, RecommendError> {
        let i = self
            .items
            .get(item)
            .ok_or_else(|| RecommendError::UnknownItem(item.to_owned()))?;
        let history = History {
            events: vec![(i, 1.0, self.latest_event)],
        };
        let reader = Reader {
            user: None,
            history: &history,
        };
        Ok(self.explain(&reader, self.rank(&reader, k, &[i], true)))
    }

    fn explain(&self, reader: &Reader, ranked: Ranked) -> Vec<Recommendation> {
        ranked
            .best
            .iter()
            .zip(ranked.why)
            .map(|(&(i, score), why)| {
                let meta = &self.catalogue[i as usize];
                Recommendation {
                    item: self.items.name(i).to_owned(),
                    title: meta.title.clone(),
                    score,
                    reason: self.words(why, meta, reader),
                }
            })
            .collect()
    }

    fn words(&self, why: Why, item: &ItemMeta, reader: &Reader) -> String {
        let title = |i: u32| {
            let name = self.items.name(i);
            self.catalogue
                .get(i as usize)
                .map(|m| m.label(name))
                .unwrap_or(name)
                .to_owned()
        };
        match why {
            Why::Popular => match self.model.popularity() {
                Some(p) => p.reason(item),
                None => "popular".into(),
            },
            Why::BecauseRead(i) if reader.user.is_none() && reader.history.len() == 1 => {
                format!("readers of “{}” also read this", title(i))
            }
            Why::BecauseRead(i) => format!("because you read “{}”", title(i)),
            Why::SimilarTo(i) => format!("similar to “{}”", title(i)),
            Why::ForYou => match item.section.as_deref() {
                Some(s) => format!("picked for you in {s}"),
                None => "picked for you".into(),
            },
        }
    }
}

/// A ranking: the best items with their scores, and why (when asked).
pub struct Ranked {
    pub best: Vec<(u32, f32)>,
    pub why: Vec<Why>,
}

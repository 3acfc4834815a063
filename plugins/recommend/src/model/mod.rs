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
pub use hybrid::{Hybrid, HybridParams, HybridWeights, Parts};
pub use itemknn::{top_k, ItemKnn, ItemKnnParams};
pub use popularity::{Popularity, PopularityParams};

use crate::data::{Dataset, History, Ids, ItemMeta, KindWeights};

/// Which model to train.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
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

/// Asked between the sweeps of iterative training: `true` stops it (the step was cancelled).
pub type Stop<'a> = &'a (dyn Fn() -> bool + Sync);

/// Training was stopped by its [`Stop`].
#[derive(Debug)]
pub struct Stopped;

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
    pub fn fit(
        data: &Dataset,
        config: &TrainConfig,
        text: &HashMap<String, Vec<f32>>,
        stop: Stop,
    ) -> Result<Model, Stopped> {
        Ok(match config.model {
            ModelKind::Popularity => Model::Popularity(Popularity::fit(data, &config.popularity)),
            ModelKind::Itemknn => {
                Model::Itemknn(ItemKnn::fit(&data.matrix(), &config.itemknn, stop)?)
            }
            ModelKind::Als => Model::Als(Als::fit(&data.matrix(), &config.als, stop)?),
            ModelKind::Content => Model::Content(Content::fit(data, text, &config.content)),
            ModelKind::Hybrid => Model::Hybrid(Box::new(Hybrid::fit(data, config, text, stop)?)),
        })
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

    /// Adds every item's score for `reader` to `out` (one slot per item). The hybrid also
    /// returns its components' scores, for [`Model::why`].
    pub fn score(&self, reader: &Reader, out: &mut [f32]) -> Option<Parts> {
        match self {
            Model::Popularity(m) => m.score(reader.history, out),
            Model::Itemknn(m) => m.score(reader.history, out),
            Model::Als(m) => m.score(reader.user, reader.history, out),
            Model::Content(m) => m.score(reader.history, out),
            Model::Hybrid(m) => return m.score(reader, out),
        }
        None
    }

    /// Whether the model's arrays fit a model of `users` users and `items` items and hold
    /// only finite numbers: what a damaged or hand-made file, or training that diverged,
    /// would break.
    pub fn check(&self, users: usize, items: usize) -> Result<(), String> {
        match self {
            Model::Popularity(p) => check_popularity(p, items),
            Model::Itemknn(m) => check_itemknn(m, items),
            Model::Als(m) => check_als(m, users, items),
            Model::Content(m) => check_content(m),
            Model::Hybrid(h) => {
                if h.fresh.len() != items || h.unread.len() != items {
                    return Err(format!("the hybrid's item flags do not fit {items} items"));
                }
                check_popularity(&h.popularity, items)?;
                h.itemknn
                    .as_ref()
                    .map_or(Ok(()), |m| check_itemknn(m, items))?;
                h.als
                    .as_ref()
                    .map_or(Ok(()), |m| check_als(m, users, items))?;
                h.content.as_ref().map_or(Ok(()), check_content)
            }
        }
    }

    /// Why each of `items` is on `reader`'s list.
    pub fn why(&self, reader: &Reader, items: &[u32], parts: Option<&Parts>) -> Vec<Why> {
        let read = |i: Option<u32>| i.map(Why::BecauseRead);
        let h = reader.history;
        match self {
            Model::Hybrid(m) => m.why(reader, items, parts),
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
}

/// What the artifact starts with, so a file of something else is refused.
const MAGIC: &[u8; 8] = b"MFRECv2\n";
/// The format before the popularity fallback was kept in every model.
const MAGIC_V1: &[u8; 8] = b"MFRECv1\n";

/// Why a model file or a request cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RecommendError {
    #[error("not a mediaflow recommender model (it does not start with `MFRECv2`)")]
    NotAModel,
    #[error(
        "this model was trained by an older mediaflow (format MFRECv1), which this one no \
         longer reads: train it again with `recommend.train`"
    )]
    OldFormat,
    #[error("the model file is damaged: {0}")]
    Corrupt(String),
    #[error(
        "training gave numbers that are not finite ({0}): lower `alpha` or the kind weights, \
         or raise `regularization`"
    )]
    Diverged(String),
    #[error("training was cancelled")]
    Cancelled,
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
    /// Freshness-weighted popularity, whatever the model: it fills a list the model has
    /// too little to say about (a user or an item it does not know) and words "popular …".
    pub popular: Popularity,
    /// The most popular items, best first (rebuilt from `popular` on load).
    #[serde(skip)]
    popular_order: Vec<u32>,
}

impl Recommender {
    pub fn train(
        data: &Dataset,
        config: &TrainConfig,
        text: &HashMap<String, Vec<f32>>,
        now: i64,
    ) -> Result<Recommender, RecommendError> {
        Self::train_until(data, config, text, now, &|| false)
    }

    /// As [`Recommender::train`], asking `stop` between the sweeps of iterative models.
    pub fn train_until(
        data: &Dataset,
        config: &TrainConfig,
        text: &HashMap<String, Vec<f32>>,
        now: i64,
        stop: Stop,
    ) -> Result<Recommender, RecommendError> {
        let model =
            Model::fit(data, config, text, stop).map_err(|Stopped| RecommendError::Cancelled)?;
        model
            .check(data.n_users(), data.n_items())
            .map_err(RecommendError::Diverged)?;
        let popular = Popularity::fit(data, &config.popularity);
        let stamp = chrono::DateTime::from_timestamp_millis(now)
            .map(|t| t.format("%Y%m%dT%H%M%SZ").to_string())
            .unwrap_or_else(|| now.to_string());
        Ok(Recommender {
            version: format!("{}-{stamp}-{}", model.kind(), data.events.len()),
            trained_at: now,
            latest_event: data.latest(),
            events: data.events.len(),
            users: data.users.clone(),
            items: data.items.clone(),
            catalogue: data.catalogue.clone(),
            histories: data.histories(),
            model,
            popular_order: popular_order(&popular),
            popular,
        })
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, RecommendError> {
        let mut out = MAGIC.to_vec();
        postcard::to_io(self, &mut out).map_err(|e| RecommendError::Corrupt(e.to_string()))?;
        Ok(out)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Recommender, RecommendError> {
        if bytes.starts_with(MAGIC_V1) {
            return Err(RecommendError::OldFormat);
        }
        let body = bytes.strip_prefix(MAGIC).ok_or(RecommendError::NotAModel)?;
        let mut r: Recommender =
            postcard::from_bytes(body).map_err(|e| RecommendError::Corrupt(e.to_string()))?;
        r.users.reindex();
        r.items.reindex();
        if r.catalogue.len() != r.items.len()
            || r.histories.len() != r.users.len()
            || r.popular.scores.len() != r.items.len()
        {
            return Err(RecommendError::Corrupt(
                "its catalogue, histories or popularity do not match its ids".into(),
            ));
        }
        r.model
            .check(r.users.len(), r.items.len())
            .and_then(|()| check_popularity(&r.popular, r.items.len()))
            .map_err(RecommendError::Corrupt)?;
        r.popular_order = popular_order(&r.popular);
        Ok(r)
    }

    /// The `k` best items for `reader`, leaving out `exclude`; with reasons when `explain`.
    ///
    /// Only items the model gives a positive score are ranked by it: a model with nothing
    /// to say about the reader (a user or item it never saw) scores everything 0, and its
    /// order would be arbitrary. The rest of the list is filled with the most popular items
    /// (score 0, reason "popular …"); it is shorter than `k` only when the catalogue runs
    /// out of items nobody excluded.
    pub fn rank(&self, reader: &Reader, k: usize, exclude: &[u32], explain: bool) -> Ranked {
        let mut scores = vec![0f32; self.items.len()];
        let parts = self.model.score(reader, &mut scores);
        for &i in exclude {
            if let Some(s) = scores.get_mut(i as usize) {
                *s = f32::NEG_INFINITY;
            }
        }
        let mut best: Vec<(u32, f32)> = scores
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_finite() && **s > 0.0)
            .map(|(i, s)| (i as u32, *s))
            .collect();
        top_k(&mut best, k);
        let mut why = if explain {
            let items: Vec<u32> = best.iter().map(|b| b.0).collect();
            self.model.why(reader, &items, parts.as_ref())
        } else {
            Vec::new()
        };
        if best.len() < k {
            let taken: std::collections::HashSet<u32> = best
                .iter()
                .map(|b| b.0)
                .chain(exclude.iter().copied())
                .collect();
            for &i in &self.popular_order {
                if best.len() == k {
                    break;
                }
                if !taken.contains(&i) {
                    best.push((i, 0.0));
                    if explain {
                        why.push(Why::Popular);
                    }
                }
            }
        }
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
            Why::Popular => self.popular.reason(item),
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

/// An error naming the first number of `v` that is not finite.
fn finite(what: &str, v: &[f32]) -> Result<(), String> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(format!("{what}[{i}] is {}", v[i])),
        None => Ok(()),
    }
}

fn check_popularity(p: &Popularity, items: usize) -> Result<(), String> {
    if p.scores.len() != items {
        return Err(format!(
            "popularity has {} scores for {items} items",
            p.scores.len()
        ));
    }
    finite("popularity", &p.scores)
}

fn check_itemknn(m: &ItemKnn, items: usize) -> Result<(), String> {
    if m.neighbours.len() > items {
        return Err(format!(
            "item-item CF has neighbours for {} items, the model {items}",
            m.neighbours.len()
        ));
    }
    m.neighbours
        .iter()
        .flatten()
        .try_for_each(|(_, s)| finite("item-item similarity", &[*s]))
}

fn check_als(m: &Als, users: usize, items: usize) -> Result<(), String> {
    let k = m.params.factors;
    if k == 0
        || !m.users.len().is_multiple_of(k)
        || m.users.len() / k > users
        || !m.items.len().is_multiple_of(k)
        || m.items.len() / k > items
        || m.gram.len() != k * k
    {
        return Err(format!(
            "ALS factors ({} and {} numbers, gram {}) do not fit {k} factors of {users} \
             users and {items} items",
            m.users.len(),
            m.items.len(),
            m.gram.len()
        ));
    }
    finite("ALS user factors", &m.users)?;
    finite("ALS item factors", &m.items)?;
    finite("ALS gram matrix", &m.gram)
}

fn check_content(m: &Content) -> Result<(), String> {
    if m.dims > 0 && !m.vectors.len().is_multiple_of(m.dims) {
        return Err(format!(
            "content vectors ({} numbers) are not of {} dimensions",
            m.vectors.len(),
            m.dims
        ));
    }
    finite("content vectors", &m.vectors)
}

/// Every item, most popular first; items nobody read (or with a score that is not a
/// number) last, in catalogue order, so a list can always be filled while items remain.
fn popular_order(p: &Popularity) -> Vec<u32> {
    let score = |i: u32| {
        p.scores
            .get(i as usize)
            .copied()
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or(0.0)
    };
    let mut v: Vec<u32> = (0..p.scores.len() as u32).collect();
    // Stable: ties keep catalogue order.
    v.sort_by(|&a, &b| score(b).total_cmp(&score(a)));
    v
}

/// A ranking: the best items with their scores, and why (when asked).
pub struct Ranked {
    pub best: Vec<(u32, f32)>,
    pub why: Vec<Why>,
}

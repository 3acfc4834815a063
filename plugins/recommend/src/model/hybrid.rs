//! The hybrid: every model's scores for a user, each scaled to its best item's, blended by
//! weight. Fallbacks: a user without history gets what is popular (among fresh items, when
//! items carry publication times); a user with few events leans more on popularity; an
//! item nobody has read yet has no collaborative score, so it competes on content alone
//! (new items get content neighbours). An item's reason is the one of the model that gave
//! it the most.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Als, Content, ItemKnn, Popularity, Reader, TrainConfig, Why};
use crate::data::{Dataset, DAY_MS};

/// How much each model counts in the blend (0 leaves it out, untrained).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HybridWeights {
    #[schemars(range(min = 0.0))]
    pub als: f32,
    /// Item–item CF over the whole history.
    #[schemars(range(min = 0.0))]
    pub itemknn: f32,
    /// Item–item CF over what the user read last (`recent_half_life`): "because you just
    /// read …".
    #[schemars(range(min = 0.0))]
    pub recent: f32,
    #[schemars(range(min = 0.0))]
    pub content: f32,
    #[schemars(range(min = 0.0))]
    pub popularity: f32,
}

impl Default for HybridWeights {
    fn default() -> Self {
        // Chosen on a validation split of MovieLens 100K (each user's second-latest item),
        // never on the test split: whole-history item–item CF added nothing next to ALS
        // and the recent reads.
        HybridWeights {
            als: 1.0,
            itemknn: 0.0,
            recent: 1.0,
            content: 0.3,
            popularity: 0.15,
        }
    }
}

/// Settings of the hybrid.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HybridParams {
    pub weights: HybridWeights,
    /// Users with fewer events than this lean on popularity: its weight is multiplied by
    /// how many events they lack, plus one.
    pub min_events: usize,
    /// A user without history is shown popular items published in the last this many days
    /// (when items have publication times; else popular items of any age).
    #[schemars(range(min = 0.0))]
    pub fresh_days: f64,
    /// The `recent` component: the read this many items before the user's latest counts
    /// half.
    #[schemars(range(min = 0.0))]
    pub recent_half_life: f32,
    /// Extra weight of content for items nobody has read yet, which have no collaborative
    /// score to compete with (new items get content neighbours).
    #[schemars(range(min = 0.0))]
    pub new_items: f32,
}

impl Default for HybridParams {
    fn default() -> Self {
        HybridParams {
            weights: HybridWeights::default(),
            min_events: 3,
            fresh_days: 2.0,
            recent_half_life: 2.0,
            new_items: 0.5,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hybrid {
    pub params: HybridParams,
    pub popularity: Popularity,
    pub itemknn: Option<ItemKnn>,
    pub als: Option<Als>,
    pub content: Option<Content>,
    /// By item: published within `fresh_days` of the newest publication.
    pub fresh: Vec<bool>,
    /// By item: nobody has read it.
    pub unread: Vec<bool>,
}

/// Each component's scores for one reader, by item (`None`: the component is off).
pub type Parts = [Option<Vec<f32>>; PARTS];

/// The components, in the order their buffers are kept.
const ALS: usize = 0;
const KNN: usize = 1;
const RECENT: usize = 2;
const CONTENT: usize = 3;
const POP: usize = 4;
const PARTS: usize = 5;

impl Hybrid {
    pub fn fit(
        data: &Dataset,
        config: &TrainConfig,
        text: &HashMap<String, Vec<f32>>,
        stop: super::Stop,
    ) -> Result<Hybrid, super::Stopped> {
        let w = &config.hybrid.weights;
        let matrix = (w.als > 0.0 || w.itemknn > 0.0 || w.recent > 0.0).then(|| data.matrix());
        let newest = data.catalogue.iter().filter_map(|m| m.published_at).max();
        let fresh = data
            .catalogue
            .iter()
            .map(|m| match (m.published_at, newest) {
                (Some(p), Some(n)) => {
                    n.saturating_sub(p) as f64 <= config.hybrid.fresh_days * DAY_MS
                }
                _ => newest.is_none(),
            })
            .collect();
        let mut unread = vec![true; data.n_items()];
        for e in &data.events {
            unread[e.item as usize] = false;
        }
        Ok(Hybrid {
            unread,
            params: config.hybrid.clone(),
            popularity: Popularity::fit(data, &config.popularity),
            itemknn: matrix
                .as_ref()
                .filter(|_| w.itemknn > 0.0 || w.recent > 0.0)
                .map(|m| ItemKnn::fit(m, &config.itemknn, stop))
                .transpose()?,
            als: matrix
                .as_ref()
                .filter(|_| w.als > 0.0)
                .map(|m| Als::fit(m, &config.als, stop))
                .transpose()?,
            content: (w.content > 0.0).then(|| Content::fit(data, text, &config.content)),
            fresh,
        })
    }

    fn weights(&self, reader: &Reader) -> [f32; PARTS] {
        let w = &self.params.weights;
        let lacking = self.params.min_events.saturating_sub(reader.history.len());
        [
            w.als,
            w.itemknn,
            w.recent,
            w.content,
            w.popularity * (1 + lacking) as f32,
        ]
    }

    /// Each component's scores, scaled so its best item scores 1.
    fn parts(&self, reader: &Reader, n: usize) -> Parts {
        let run = |f: &dyn Fn(&mut [f32])| {
            let mut buf = vec![0f32; n];
            f(&mut buf);
            let max = buf.iter().copied().fold(0f32, f32::max);
            if max > 0.0 {
                buf.iter_mut().for_each(|x| *x /= max);
            }
            buf
        };
        let h = reader.history;
        let w = &self.params.weights;
        [
            self.als
                .as_ref()
                .map(|m| run(&|b| m.score(reader.user, h, b))),
            self.itemknn
                .as_ref()
                .filter(|_| w.itemknn > 0.0)
                .map(|m| run(&|b| m.score_recent(h, b, 0.0))),
            self.itemknn
                .as_ref()
                .filter(|_| w.recent > 0.0)
                .map(|m| run(&|b| m.score_recent(h, b, self.params.recent_half_life))),
            self.content.as_ref().map(|m| run(&|b| m.score(h, b))),
            Some(run(&|b| self.popularity.score(h, b))),
        ]
    }

    /// Adds every item's score to `out`; returns the components' scores, which
    /// [`Hybrid::why`] reads (none for a reader with no history: popularity alone).
    pub fn score(&self, reader: &Reader, out: &mut [f32]) -> Option<Parts> {
        if reader.history.is_empty() {
            // Nothing known of the reader: what is popular, fresh items first.
            let max = self.popularity.scores.iter().copied().fold(0f32, f32::max);
            for ((o, s), fresh) in out.iter_mut().zip(&self.popularity.scores).zip(&self.fresh) {
                let s = if max > 0.0 { s / max } else { 0.0 };
                *o += s + if *fresh { 1.0 } else { 0.0 };
            }
            return None;
        }
        let w = self.weights(reader);
        let parts = self.parts(reader, out.len());
        for (part, w) in parts.iter().zip(w) {
            if let Some(p) = part {
                out.iter_mut().zip(p).for_each(|(o, s)| *o += w * s);
            }
        }
        if let Some(content) = &parts[CONTENT] {
            for ((o, s), unread) in out.iter_mut().zip(content).zip(&self.unread) {
                if *unread {
                    *o += self.params.new_items * s;
                }
            }
        }
        Some(parts)
    }

    /// The components' weights for `item`: content counts more for unread items.
    fn item_weights(&self, w: [f32; PARTS], item: u32) -> [f32; PARTS] {
        let mut w = w;
        if self.unread.get(item as usize).copied().unwrap_or(false) {
            w[CONTENT] += self.params.new_items;
        }
        w
    }

    /// Why each of `items` is on the list: the component that gave it the most, with the
    /// `parts` [`Hybrid::score`] returned.
    pub fn why(&self, reader: &Reader, items: &[u32], parts: Option<&Parts>) -> Vec<Why> {
        let (false, Some(parts)) = (reader.history.is_empty(), parts) else {
            return vec![Why::Popular; items.len()];
        };
        let w = self.weights(reader);
        let h = reader.history;
        items
            .iter()
            .map(|&item| {
                let w = self.item_weights(w, item);
                let best = (0..PARTS)
                    .filter_map(|c| Some((c, w[c] * parts[c].as_ref()?.get(item as usize)?)))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(c, _)| c);
                let found = match best {
                    Some(ALS) => self
                        .als
                        .as_ref()
                        .and_then(|m| m.because(h, item))
                        .map(Why::BecauseRead),
                    Some(KNN | RECENT) => self
                        .itemknn
                        .as_ref()
                        .and_then(|m| m.because(h, item))
                        .map(Why::BecauseRead),
                    Some(CONTENT) => self
                        .content
                        .as_ref()
                        .and_then(|m| m.because(h, item))
                        .map(Why::SimilarTo),
                    Some(POP) => Some(Why::Popular),
                    _ => None,
                };
                found.unwrap_or(Why::ForYou)
            })
            .collect()
    }
}

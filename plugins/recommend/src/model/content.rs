//! Content-based: items are similar when their text is (a `text.embed` collection of the
//! items' text, by item id), or, for items without a vector, when they share section and
//! tags. A user's profile is the recency-weighted mean of what they read; an item's score is
//! its cosine to the profile. Needs no reading history for the item, so a story published
//! a minute ago can be recommended (cold start).

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use mediaflow_vecmath as vecmath;

use crate::data::{Dataset, History, DAY_MS};

/// Settings of the content model.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ContentParams {
    /// How many of the user's latest items make their profile.
    pub recent: usize,
    /// An item read this many days before the user's latest counts half.
    #[schemars(range(min = 0.0))]
    pub half_life_days: f64,
    /// Weight of the section-and-tags features next to the text vector (0 to ignore them).
    #[schemars(range(min = 0.0))]
    pub tags_weight: f32,
}

impl Default for ContentParams {
    fn default() -> Self {
        ContentParams {
            recent: 20,
            half_life_days: 14.0,
            tags_weight: 0.5,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Content {
    pub params: ContentParams,
    pub dims: usize,
    /// Row-major, one unit vector per item (zeros for an item with neither text vector nor
    /// tags).
    pub vectors: Vec<f32>,
    /// Where the vectors came from, for the model's description.
    pub source: String,
}

impl Content {
    /// `text` maps item ids to unit text vectors (all of one size); items without one, and
    /// every item when `text` is empty, are described by their section and tags.
    pub fn fit(
        data: &Dataset,
        text: &HashMap<String, Vec<f32>>,
        params: &ContentParams,
    ) -> Content {
        let text_dims = text.values().map(Vec::len).next().unwrap_or(0);
        // Section and tags as one-hot features, each weighted by its inverse document
        // frequency.
        let mut vocab: HashMap<String, usize> = HashMap::new();
        let mut df: Vec<f32> = Vec::new();
        let features: Vec<Vec<usize>> = data
            .catalogue
            .iter()
            .map(|m| {
                let mut f: Vec<usize> = m
                    .section
                    .iter()
                    .map(|s| format!("section:{}", s.to_lowercase()))
                    .chain(m.tags.iter().map(|t| format!("tag:{}", t.to_lowercase())))
                    .map(|name| {
                        let next = vocab.len();
                        let id = *vocab.entry(name).or_insert(next);
                        if id == df.len() {
                            df.push(0.0);
                        }
                        id
                    })
                    .collect();
                f.sort_unstable();
                f.dedup();
                for &id in &f {
                    df[id] += 1.0;
                }
                f
            })
            .collect();
        let n = data.n_items().max(1) as f32;
        let dims = text_dims + vocab.len();
        let mut vectors = vec![0f32; data.n_items() * dims];
        let mut with_text = 0;
        for (i, feats) in features.iter().enumerate() {
            let v = &mut vectors[i * dims..(i + 1) * dims];
            if let Some(t) = text
                .get(data.items.name(i as u32))
                .filter(|t| t.len() == text_dims)
            {
                v[..text_dims].copy_from_slice(t);
                with_text += 1;
            }
            let mut tags = vec![0f32; vocab.len()];
            for &id in feats {
                tags[id] = (n / df[id]).ln().max(0.0) + 1.0;
            }
            let norm = vecmath::norm(&tags);
            if norm > 0.0 {
                for (d, t) in v[text_dims..].iter_mut().zip(&tags) {
                    *d = params.tags_weight * t / norm;
                }
            }
            vecmath::normalise(v);
        }
        let source = match (with_text, vocab.len()) {
            (0, 0) => "nothing (no item has a text vector, section or tags)".to_owned(),
            (0, t) => format!("sections and tags ({t} features)"),
            (n, 0) => format!("text vectors of {n} items"),
            (n, t) => format!("text vectors of {n} items, sections and tags ({t} features)"),
        };
        Content {
            params: params.clone(),
            dims,
            vectors,
            source,
        }
    }

    fn vector(&self, i: u32) -> Option<&[f32]> {
        self.vectors
            .get(i as usize * self.dims..(i as usize + 1) * self.dims)
    }

    /// The user's profile: a recency-weighted sum of their latest items' vectors.
    fn profile(&self, user: &History) -> Vec<f32> {
        let mut p = vec![0f32; self.dims];
        let latest = user.events.iter().map(|e| e.2).max().unwrap_or(0);
        let half = self.params.half_life_days.max(1e-3) * DAY_MS;
        for &(i, _, ts) in user.events.iter().rev().take(self.params.recent.max(1)) {
            if let Some(v) = self.vector(i) {
                let w = 0.5f64.powf(latest.saturating_sub(ts).max(0) as f64 / half) as f32;
                vecmath::axpy(w, v, &mut p);
            }
        }
        p
    }

    pub fn score(&self, user: &History, out: &mut [f32]) {
        if self.dims == 0 {
            return;
        }
        let p = self.profile(user);
        let norm = vecmath::norm(&p);
        if norm == 0.0 || !norm.is_finite() {
            return;
        }
        for (o, v) in out.iter_mut().zip(self.vectors.chunks_exact(self.dims)) {
            *o += vecmath::dot(v, &p) / norm;
        }
    }

    /// The item the user read that is most like `item`.
    pub fn because(&self, user: &History, item: u32) -> Option<u32> {
        let target = self.vector(item)?;
        user.items()
            .filter(|&i| i != item)
            .filter_map(|i| {
                let v = self.vector(i)?;
                let s: f32 = v.iter().zip(target).map(|(a, b)| a * b).sum();
                (s > 0.0).then_some((i, s))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }
}

//! Item–item collaborative filtering on implicit feedback: two items are similar when the
//! same people read them (cosine over who read them, shrunk towards 0 for items with few
//! readers in common). Each item keeps its `neighbours` most similar items; a user's score
//! for an item is the summed similarity to what they read.

use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::data::{row, History, Matrix};

/// Settings of item–item CF.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ItemKnnParams {
    /// Similar items kept per item.
    pub neighbours: usize,
    /// Added to the cosine's denominator: items with few common readers count less.
    #[schemars(range(min = 0.0))]
    pub shrink: f32,
    /// What a user read recently counts more: the item read this many items before their
    /// latest counts half (0: every item counts the same).
    #[schemars(range(min = 0.0))]
    pub recency: f32,
}

impl Default for ItemKnnParams {
    fn default() -> Self {
        ItemKnnParams {
            neighbours: 100,
            shrink: 10.0,
            recency: 0.0,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ItemKnn {
    pub params: ItemKnnParams,
    /// By item: its most similar items, best first.
    pub neighbours: Vec<Vec<(u32, f32)>>,
}

impl ItemKnn {
    /// Trains on `m`; `stop` is asked before each item's neighbours are computed, and a
    /// `true` ends training with [`super::Stopped`].
    pub fn fit(
        m: &Matrix,
        params: &ItemKnnParams,
        stop: super::Stop,
    ) -> Result<ItemKnn, super::Stopped> {
        let stopped = std::sync::atomic::AtomicBool::new(false);
        let n_items = m.cols.rows();
        // Binary: a reader counts once, however much they read.
        let readers: Vec<f32> = (0..n_items)
            .map(|i| (row(&m.cols, i).count() as f32).sqrt())
            .collect();
        let k = params.neighbours.max(1);
        let neighbours = (0..n_items)
            .into_par_iter()
            .map_init(
                || (vec![0f32; n_items], Vec::<usize>::new()),
                |(acc, touched), i| {
                    if stopped.load(std::sync::atomic::Ordering::Relaxed) || stop() {
                        stopped.store(true, std::sync::atomic::Ordering::Relaxed);
                        return Vec::new();
                    }
                    for (u, _) in row(&m.cols, i) {
                        for (j, _) in row(&m.rows, u) {
                            if j != i {
                                if acc[j] == 0.0 {
                                    touched.push(j);
                                }
                                acc[j] += 1.0;
                            }
                        }
                    }
                    let mut sims: Vec<(u32, f32)> = touched
                        .iter()
                        .map(|&j| {
                            let s = acc[j] / (readers[i] * readers[j] + params.shrink);
                            (j as u32, s)
                        })
                        .collect();
                    for &j in touched.iter() {
                        acc[j] = 0.0;
                    }
                    touched.clear();
                    top_k(&mut sims, k);
                    sims
                },
            )
            .collect();
        if stopped.into_inner() {
            return Err(super::Stopped);
        }
        Ok(ItemKnn {
            params: params.clone(),
            neighbours,
        })
    }

    pub fn score(&self, user: &History, out: &mut [f32]) {
        self.score_recent(user, out, self.params.recency);
    }

    /// Scores with the user's reads weighted by recency: the read `recency` items before
    /// the latest counts half (0: all the same).
    pub fn score_recent(&self, user: &History, out: &mut [f32], recency: f32) {
        let n = user.len();
        for (p, i) in user.items().enumerate() {
            let w = if recency > 0.0 {
                0.5f32.powf((n - 1 - p) as f32 / recency)
            } else {
                1.0
            };
            if let Some(list) = self.neighbours.get(i as usize) {
                for &(j, s) in list {
                    if let Some(o) = out.get_mut(j as usize) {
                        *o += w * s;
                    }
                }
            }
        }
    }

    /// The item the user read that is most similar to `item`.
    pub fn because(&self, user: &History, item: u32) -> Option<u32> {
        user.items()
            .filter_map(|i| {
                let list = self.neighbours.get(i as usize)?;
                list.iter().find(|(j, _)| *j == item).map(|(_, s)| (i, *s))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }
}

/// Keeps the `k` best of `v` (by score, then index), best first.
pub fn top_k(v: &mut Vec<(u32, f32)>, k: usize) {
    let cmp = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if k == 0 {
        v.clear();
        return;
    }
    if v.len() > k {
        v.select_nth_unstable_by(k - 1, cmp);
        v.truncate(k);
    }
    v.sort_unstable_by(cmp);
}

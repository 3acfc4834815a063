//! Popularity with freshness: each reader of an item counts 0.5^(age / half-life), age
//! measured from the newest event. The same list for everyone; the baseline, and what a
//! user nobody knows yet is shown.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, History, ItemMeta, DAY_MS};

/// Settings of the popularity model.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PopularityParams {
    /// A reader's vote halves every this many days (freshness).
    #[schemars(range(min = 0.0))]
    pub half_life_days: f64,
}

impl Default for PopularityParams {
    fn default() -> Self {
        PopularityParams {
            half_life_days: 7.0,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Popularity {
    pub params: PopularityParams,
    /// By item.
    pub scores: Vec<f32>,
}

impl Popularity {
    pub fn fit(data: &Dataset, params: &PopularityParams) -> Popularity {
        let now = data.latest();
        let half_life = params.half_life_days.max(1e-3) * DAY_MS;
        let mut scores = vec![0f32; data.n_items()];
        for e in &data.events {
            let age = now.saturating_sub(e.ts).max(0) as f64;
            scores[e.item as usize] += 0.5f64.powf(age / half_life) as f32;
        }
        Popularity {
            params: params.clone(),
            scores,
        }
    }

    pub fn score(&self, _user: &History, out: &mut [f32]) {
        for (o, s) in out.iter_mut().zip(&self.scores) {
            *o += s;
        }
    }

    /// "popular in sport today".
    pub fn reason(&self, item: &ItemMeta) -> String {
        let when = match self.params.half_life_days {
            d if d <= 2.0 => "today",
            d if d <= 14.0 => "this week",
            _ => "lately",
        };
        match item.section.as_deref().filter(|s| !s.is_empty()) {
            Some(section) => format!("popular in {section} {when}"),
            None => format!("popular {when}"),
        }
    }
}

//! Offline evaluation: hold out each user's latest item (by time), train every model on the
//! rest, rank every item each user has not read, and report hit rate and NDCG at k,
//! catalogue coverage, training time and ranking throughput.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::data::Dataset;
use crate::model::{Reader, RecommendError, Recommender, TrainConfig};

/// One model's figures.
#[derive(Clone, Debug, Serialize)]
pub struct EvalRow {
    pub model: String,
    /// Share of users whose held-out item is in their top k.
    pub hr: f64,
    /// Mean of 1 / log2(position + 1) over users (0 for a miss).
    pub ndcg: f64,
    /// Share of the catalogue in at least one user's top k.
    pub coverage: f64,
    pub train_seconds: f64,
    /// Users ranked per second (every item scored, read ones left out).
    pub users_per_second: f64,
}

/// The split and every model's row.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    pub k: usize,
    pub users: usize,
    pub items: usize,
    /// Training events (one per user and item).
    pub train_events: usize,
    /// Users with a held-out item (those with at least two items).
    pub test_users: usize,
    pub rows: Vec<EvalRow>,
}

/// The split the models are evaluated on.
pub struct Split {
    pub train: Dataset,
    pub test: Vec<(u32, u32)>,
}

impl Split {
    pub fn new(data: &Dataset) -> Split {
        let (train, test) = data.split_last();
        Split { train, test }
    }

    /// Writes `train.tsv` (`user TAB item TAB weight TAB ms`) and `test.tsv`
    /// (`user TAB item`), so another library can be run on exactly this split.
    pub fn export(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let d = &self.train;
        let mut train = std::io::BufWriter::new(std::fs::File::create(dir.join("train.tsv"))?);
        for e in &d.events {
            writeln!(
                train,
                "{}\t{}\t{}\t{}",
                d.users.name(e.user),
                d.items.name(e.item),
                e.weight,
                e.ts
            )?;
        }
        train.flush()?;
        let mut test = std::io::BufWriter::new(std::fs::File::create(dir.join("test.tsv"))?);
        for &(u, i) in &self.test {
            writeln!(test, "{}\t{}", d.users.name(u), d.items.name(i))?;
        }
        test.flush()
    }

    /// Trains `config` on the training set and scores it on the held-out items.
    pub fn evaluate(
        &self,
        name: &str,
        config: &TrainConfig,
        text: &HashMap<String, Vec<f32>>,
        k: usize,
    ) -> Result<EvalRow, RecommendError> {
        let started = Instant::now();
        let model = Recommender::train(&self.train, config, text, self.train.latest())?;
        let train_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let results: Vec<(Option<usize>, Vec<u32>)> = self
            .test
            .par_iter()
            .map(|&(u, target)| {
                let history = &model.histories[u as usize];
                let seen: Vec<u32> = history.items().collect();
                let reader = Reader {
                    user: Some(u),
                    history,
                };
                let ranked = model.rank(&reader, k, &seen, false);
                let items: Vec<u32> = ranked.best.iter().map(|b| b.0).collect();
                (items.iter().position(|&i| i == target), items)
            })
            .collect();
        let rank_seconds = started.elapsed().as_secs_f64();
        let n = self.test.len().max(1) as f64;
        let hits = results.iter().filter(|r| r.0.is_some()).count() as f64;
        let ndcg: f64 = results
            .iter()
            .filter_map(|r| r.0)
            .map(|p| 1.0 / ((p as f64) + 2.0).log2())
            .sum();
        let shown: HashSet<u32> = results.iter().flat_map(|r| r.1.iter().copied()).collect();
        Ok(EvalRow {
            model: name.to_owned(),
            hr: hits / n,
            ndcg: ndcg / n,
            coverage: shown.len() as f64 / self.train.n_items().max(1) as f64,
            train_seconds,
            users_per_second: self.test.len() as f64 / rank_seconds.max(1e-9),
        })
    }

    /// Every model of `models` on this split.
    pub fn report(
        &self,
        models: &[(String, TrainConfig)],
        text: &HashMap<String, Vec<f32>>,
        k: usize,
    ) -> Result<EvalReport, RecommendError> {
        Ok(EvalReport {
            k,
            users: self.train.n_users(),
            items: self.train.n_items(),
            train_events: self.train.events.len(),
            test_users: self.test.len(),
            rows: models
                .iter()
                .map(|(name, c)| self.evaluate(name, c, text, k))
                .collect::<Result<_, _>>()?,
        })
    }
}

impl EvalReport {
    /// The report as a table.
    pub fn table(&self) -> String {
        let k = self.k;
        let mut s = format!(
            "{} users, {} items, {} training events, {} held out (each user's latest)\n\n",
            self.users, self.items, self.train_events, self.test_users
        );
        s += &format!(
            "{:<28} {:>8} {:>8} {:>9} {:>10} {:>12}\n",
            "model",
            format!("HR@{k}"),
            format!("NDCG@{k}"),
            "coverage",
            "train (s)",
            "users/s"
        );
        for r in &self.rows {
            s += &format!(
                "{:<28} {:>8.4} {:>8.4} {:>8.1}% {:>10.2} {:>12.0}\n",
                r.model,
                r.hr,
                r.ndcg,
                r.coverage * 100.0,
                r.train_seconds,
                r.users_per_second
            );
        }
        s
    }
}

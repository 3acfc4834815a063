//! Classifier heads: a softmax (multinomial logistic regression) layer over `text.embed`
//! vectors, trained here, stored as one JSON file that records the embedding model it was
//! trained on (by sha256), its labels and its held-out metrics.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::classify::softmax;

pub const FORMAT: &str = "mediaflow-head/1";

#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    #[error("the head {head} was trained on embeddings of {trained} (sha256 {trained_sha}), not of {used} (sha256 {used_sha})")]
    WrongEmbedding {
        head: String,
        trained: String,
        trained_sha: String,
        used: String,
        used_sha: String,
    },
}

/// The embedding model a head was trained on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// The `model:` it was trained with (a catalog name or a path), for messages.
    pub model: String,
    pub sha256: String,
    pub dims: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub accuracy: f64,
    pub macro_f1: f64,
    pub f1: BTreeMap<String, f64>,
    pub train_rows: usize,
    pub test_rows: usize,
    /// How the held-out rows were chosen.
    pub split: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Head {
    pub format: String,
    pub embedding: Embedding,
    pub labels: Vec<String>,
    /// `labels.len()` rows of `embedding.dims` weights.
    pub weights: Vec<Vec<f32>>,
    pub bias: Vec<f32>,
    pub metrics: Metrics,
    /// Training settings, for the record.
    #[serde(default)]
    pub training: serde_json::Value,
}

impl Head {
    pub fn parse(text: &str, label: &str) -> Result<Head, HeadError> {
        let bad = |message: String| HeadError::Read {
            path: label.to_owned(),
            message,
        };
        let head: Head = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if head.format != FORMAT {
            return Err(bad(format!(
                "format `{}` is not `{FORMAT}`; train it again with `mediaflow train classifier`",
                head.format
            )));
        }
        let k = head.labels.len();
        if k < 2
            || head.weights.len() != k
            || head.bias.len() != k
            || head.weights.iter().any(|r| r.len() != head.embedding.dims)
        {
            return Err(bad(format!(
                "its weights are not {k} × {} with {k} biases",
                head.embedding.dims
            )));
        }
        Ok(head)
    }

    pub fn read(path: &Path) -> Result<Head, HeadError> {
        let text = std::fs::read_to_string(path).map_err(|e| HeadError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Head::parse(&text, &path.display().to_string())
    }

    /// Refuses a head trained on another embedding model.
    pub fn check_embedding(&self, head: &str, model: &str, sha256: &str) -> Result<(), HeadError> {
        if self.embedding.sha256 == sha256 {
            return Ok(());
        }
        Err(HeadError::WrongEmbedding {
            head: head.to_owned(),
            trained: self.embedding.model.clone(),
            trained_sha: short(&self.embedding.sha256),
            used: model.to_owned(),
            used_sha: short(sha256),
        })
    }

    /// Label probabilities for one embedding.
    pub fn predict(&self, x: &[f32]) -> Vec<f32> {
        softmax(&logits(&self.weights, &self.bias, x))
    }
}

fn short(sha: &str) -> String {
    sha.chars().take(12).collect()
}

fn logits(w: &[Vec<f32>], b: &[f32], x: &[f32]) -> Vec<f32> {
    w.iter()
        .zip(b)
        .map(|(row, bias)| bias + row.iter().zip(x).map(|(a, b)| a * b).sum::<f32>())
        .collect()
}

/// How to train.
#[derive(Clone, Debug, Serialize)]
pub struct Training {
    pub epochs: usize,
    pub learning_rate: f32,
    /// L2 penalty on the weights.
    pub l2: f32,
    /// Weigh each class by the inverse of its frequency (for macro-F1 on skewed labels).
    pub balanced: bool,
}

impl Default for Training {
    fn default() -> Self {
        Training {
            epochs: 300,
            learning_rate: 0.05,
            l2: 1e-4,
            balanced: true,
        }
    }
}

/// Fits weights and biases to `x` (rows of `dims`) and labels `y` (indices below `k`) by
/// full-batch gradient descent with Adam on the (class-weighted) cross-entropy.
/// Deterministic: no randomness.
pub fn fit(x: &[Vec<f32>], y: &[usize], k: usize, t: &Training) -> (Vec<Vec<f32>>, Vec<f32>) {
    let d = x.first().map_or(0, Vec::len);
    let mut w = vec![vec![0f32; d]; k];
    let mut b = vec![0f32; k];
    let mut counts = vec![0usize; k];
    for &c in y {
        counts[c] += 1;
    }
    let class_weight: Vec<f32> = counts
        .iter()
        .map(|&c| {
            if t.balanced && c > 0 {
                x.len() as f32 / (k as f32 * c as f32)
            } else {
                1.0
            }
        })
        .collect();
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let mut mw = vec![vec![0f32; d]; k];
    let mut vw = vec![vec![0f32; d]; k];
    let mut mb = vec![0f32; k];
    let mut vb = vec![0f32; k];
    let n = x.len().max(1) as f32;
    for epoch in 1..=t.epochs {
        let mut gw = vec![vec![0f32; d]; k];
        let mut gb = vec![0f32; k];
        for (xi, &yi) in x.iter().zip(y) {
            let p = softmax(&logits(&w, &b, xi));
            let cw = class_weight[yi];
            for c in 0..k {
                let g = cw * (p[c] - if c == yi { 1.0 } else { 0.0 }) / n;
                gb[c] += g;
                for (gj, xj) in gw[c].iter_mut().zip(xi) {
                    *gj += g * xj;
                }
            }
        }
        let (c1, c2) = (1.0 - b1.powi(epoch as i32), 1.0 - b2.powi(epoch as i32));
        for c in 0..k {
            for j in 0..d {
                let g = gw[c][j] + t.l2 * w[c][j];
                mw[c][j] = b1 * mw[c][j] + (1.0 - b1) * g;
                vw[c][j] = b2 * vw[c][j] + (1.0 - b2) * g * g;
                w[c][j] -= t.learning_rate * (mw[c][j] / c1) / ((vw[c][j] / c2).sqrt() + eps);
            }
            mb[c] = b1 * mb[c] + (1.0 - b1) * gb[c];
            vb[c] = b2 * vb[c] + (1.0 - b2) * gb[c] * gb[c];
            b[c] -= t.learning_rate * (mb[c] / c1) / ((vb[c] / c2).sqrt() + eps);
        }
    }
    (w, b)
}

/// Accuracy, macro-F1 and per-label F1 of predictions against the truth.
pub fn evaluate(truth: &[usize], predicted: &[usize], labels: &[String]) -> Metrics {
    let k = labels.len();
    let mut tp = vec![0usize; k];
    let mut fp = vec![0usize; k];
    let mut fn_ = vec![0usize; k];
    for (&t, &p) in truth.iter().zip(predicted) {
        if t == p {
            tp[t] += 1;
        } else {
            fp[p] += 1;
            fn_[t] += 1;
        }
    }
    let mut f1 = BTreeMap::new();
    for c in 0..k {
        let precision = tp[c] as f64 / (tp[c] + fp[c]).max(1) as f64;
        let recall = tp[c] as f64 / (tp[c] + fn_[c]).max(1) as f64;
        let f = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        f1.insert(labels[c].clone(), f);
    }
    let correct = tp.iter().sum::<usize>();
    Metrics {
        accuracy: correct as f64 / truth.len().max(1) as f64,
        macro_f1: f1.values().sum::<f64>() / k.max(1) as f64,
        f1,
        train_rows: 0,
        test_rows: truth.len(),
        split: String::new(),
    }
}

pub fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv {
                (i, v)
            } else {
                (bi, bv)
            }
        })
        .0
}

/// The held-out part of a data set: rows whose key hashes into the last `percent` of 100
/// buckets (FNV-1a), so the split is stable across runs, machines and row order.
pub fn held_out(key: &str, percent: u64) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h % 100 >= 100 - percent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_separable_classes_and_scores_them() {
        // Three clusters on the axes of a 3-d space, a little noise.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..90 {
            let c = i % 3;
            let mut v = vec![0.1 * ((i * 7 % 5) as f32 - 2.0) / 2.0; 3];
            v[c] += 1.0;
            x.push(v);
            y.push(c);
        }
        let (w, b) = fit(&x, &y, 3, &Training::default());
        let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let predicted: Vec<usize> = x
            .iter()
            .map(|v| argmax(&softmax(&logits(&w, &b, v))))
            .collect();
        let m = evaluate(&y, &predicted, &labels);
        assert_eq!(m.accuracy, 1.0, "{m:?}");
        assert_eq!(m.macro_f1, 1.0);

        let wrong = vec![1usize; y.len()];
        let m = evaluate(&y, &wrong, &labels);
        assert!((m.accuracy - 1.0 / 3.0).abs() < 1e-9);
        assert!((m.f1["b"] - 0.5).abs() < 1e-9 && m.f1["a"] == 0.0);
    }

    #[test]
    fn a_head_on_another_embedding_is_refused_and_bad_files_are_named() {
        let head = Head {
            format: FORMAT.into(),
            embedding: Embedding {
                model: "minilm-l6".into(),
                sha256: "aaaa".repeat(16),
                dims: 2,
            },
            labels: vec!["x".into(), "y".into()],
            weights: vec![vec![1.0, 0.0], vec![0.0, 1.0]],
            bias: vec![0.0, 0.0],
            metrics: Metrics::default(),
            training: serde_json::Value::Null,
        };
        let text = serde_json::to_string(&head).unwrap();
        let back = Head::parse(&text, "h.json").unwrap();
        assert!(back.predict(&[2.0, 0.0])[0] > 0.8);
        assert!(back
            .check_embedding("h.json", "minilm-l6", &"aaaa".repeat(16))
            .is_ok());
        let e = back
            .check_embedding("h.json", "minilm-l3", &"bbbb".repeat(16))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the head h.json was trained on embeddings of minilm-l6 (sha256 aaaaaaaaaaaa), not of minilm-l3 (sha256 bbbbbbbbbbbb)"
        );
        let e = Head::parse(
            &text.replace("\"bias\":[0.0,0.0]", "\"bias\":[0.0]"),
            "h.json",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("h.json: its weights are not 2 × 2"),
            "{e}"
        );
        assert!(Head::parse("{", "h.json").is_err());
    }

    #[test]
    fn the_split_is_stable_and_near_its_share() {
        let held = (0..10_000)
            .filter(|i| held_out(&format!("row-{i}"), 20))
            .count();
        assert!((1_800..2_200).contains(&held), "{held}");
        assert_eq!(held_out("row-7", 20), held_out("row-7", 20));
    }
}

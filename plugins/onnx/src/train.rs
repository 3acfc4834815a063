//! `mediaflow train classifier` (run as `mediaflow-onnx train-classifier`): labelled
//! texts in a TSV/CSV file → embeddings → a softmax head, with metrics on a held-out split.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;

use crate::embed::{self, TextModel, Window};
use crate::head::{self, Embedding, Head, Training, FORMAT};

#[derive(Parser, Debug)]
#[command(
    name = "mediaflow train classifier",
    about = "Train a text classifier head over text.embed vectors"
)]
pub struct Args {
    /// Labelled texts: TSV or CSV (by extension) with a header row; may be given more than once.
    #[arg(long, required = true)]
    pub data: Vec<PathBuf>,
    /// The column with the text.
    #[arg(long, default_value = "text")]
    pub text_column: String,
    /// The column with the label.
    #[arg(long, default_value = "label")]
    pub label_column: String,
    /// Treat the label column as a rating on [-SCALE, SCALE] and map it to negative /
    /// neutral / positive (rating/SCALE below -0.05, between, above 0.05), as the VADER
    /// paper does.
    #[arg(long)]
    pub sentiment_scale: Option<f64>,
    /// Where to write the head (JSON).
    #[arg(long)]
    pub out: PathBuf,
    /// The embedding model (catalog name or path).
    #[arg(long, default_value = crate::text_plugin::DEFAULT_EMBEDDING)]
    pub model: String,
    /// Percent of rows held out for the metrics (chosen by a hash of the text, so the same
    /// rows on every run and machine).
    #[arg(long, default_value_t = 20)]
    pub test_percent: u64,
    #[arg(long, default_value_t = 300)]
    pub epochs: usize,
    /// L2 penalty on the weights.
    #[arg(long, default_value_t = 1e-4)]
    pub l2: f32,
    /// Weigh each label by the inverse of its frequency (raises recall on rare labels,
    /// usually at some cost in accuracy).
    #[arg(long)]
    pub balanced: bool,
    /// Keep the texts' embeddings in this file and reuse them when the same model embeds
    /// the same texts again (to retrain with other settings without embedding again).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Print the metrics as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{path}: {message}")]
    Data { path: String, message: String },
    #[error("{0}")]
    Model(String),
}

/// One labelled row.
pub struct Row {
    pub text: String,
    pub label: String,
}

/// Reads `text_column` and `label_column` of a TSV/CSV file with a header.
pub fn read_rows(path: &Path, args: &Args) -> Result<Vec<Row>, TrainError> {
    let bad = |message: String| TrainError::Data {
        path: path.display().to_string(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    if let Err(e) = std::str::from_utf8(&bytes) {
        return Err(bad(format!(
            "not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        )));
    }
    // CSV with RFC 4180 quoting (a quoted cell may hold commas, quotes and line breaks);
    // TSV as written by spreadsheets and pandas: tab-separated, no quoting.
    let csv = path.extension().is_some_and(|e| e == "csv");
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(if csv { b',' } else { b'\t' })
        .quoting(csv)
        .has_headers(true)
        .from_reader(bytes.as_slice());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| bad(format!("line 1: {e}")))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    if header.len() <= 1 && header.first().is_none_or(|h| h.is_empty()) {
        return Err(bad("the file is empty".into()));
    }
    let column = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| {
            bad(format!(
                "line 1: no column `{name}` (the header has {})",
                header.join(", ")
            ))
        })
    };
    let (t, l) = (column(&args.text_column)?, column(&args.label_column)?);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            bad(format!("line {line}: {e}"))
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let (Some(text), Some(label)) = (record.get(t), record.get(l)) else {
            continue;
        };
        let label = match args.sentiment_scale {
            Some(scale) => {
                let r: f64 = label.trim().parse().map_err(|_| {
                    bad(format!(
                        "line {line}: `{label}` is not a number (--sentiment-scale)"
                    ))
                })?;
                let r = r / scale;
                if r < -0.05 {
                    "negative"
                } else if r > 0.05 {
                    "positive"
                } else {
                    "neutral"
                }
                .to_owned()
            }
            None => label.trim().to_owned(),
        };
        if text.trim().is_empty() || label.is_empty() {
            continue;
        }
        rows.push(Row {
            text: text.to_string(),
            label,
        });
    }
    Ok(rows)
}

/// Embeds many texts with `model`, in length-sorted batches (little padding).
pub fn embed_all(model: &TextModel, texts: &[&str]) -> Result<Vec<Vec<f32>>, TrainError> {
    let mut windows: Vec<(usize, Window)> = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        let ws = model
            .windows(t)
            .map_err(|e| TrainError::Model(format!("text {}: {e}", i + 1)))?;
        windows.extend(ws.into_iter().map(|w| (i, w)));
    }
    let mut order: Vec<usize> = (0..windows.len()).collect();
    order.sort_by_key(|&i| windows[i].1.ids.len());
    let mut pooled: Vec<Vec<f32>> = vec![Vec::new(); windows.len()];
    for batch in order.chunks(32) {
        let ws: Vec<&Window> = batch.iter().map(|&i| &windows[i].1).collect();
        let out = model
            .pool(&ws)
            .map_err(|e| TrainError::Model(e.to_string()))?;
        for (&i, v) in batch.iter().zip(out) {
            pooled[i] = v;
        }
    }
    let mut per_text: Vec<(Vec<Window>, Vec<Vec<f32>>)> =
        (0..texts.len()).map(|_| (Vec::new(), Vec::new())).collect();
    for ((i, w), p) in windows.into_iter().zip(pooled) {
        per_text[i].0.push(w);
        per_text[i].1.push(p);
    }
    Ok(per_text
        .iter()
        .map(|(w, p)| {
            let lengths: Vec<usize> = w.iter().map(|w| w.ids.len()).collect();
            embed::combine(&lengths, p)
        })
        .collect())
}

const CACHE_MAGIC: &[u8; 8] = b"MFEMB001";

/// The embeddings in `cache` if it holds those of exactly these texts by this model, else
/// `embed()`'s, written to it.
fn cached(
    cache: &Path,
    model_sha: &str,
    texts: &[&str],
    embed: impl FnOnce() -> Result<Vec<Vec<f32>>, TrainError>,
) -> Result<Vec<Vec<f32>>, TrainError> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(model_sha.as_bytes());
    for t in texts {
        h.update(t.as_bytes());
        h.update([0u8]);
    }
    let key = h.finalize();
    if let Ok(bytes) = std::fs::read(cache) {
        if bytes.len() > 48 && &bytes[..8] == CACHE_MAGIC && bytes[8..40] == key[..] {
            let n = u32::from_le_bytes([bytes[40], bytes[41], bytes[42], bytes[43]]) as usize;
            let d = u32::from_le_bytes([bytes[44], bytes[45], bytes[46], bytes[47]]) as usize;
            let body = &bytes[48..];
            if n == texts.len() && body.len() == n * d * 4 {
                let floats: Vec<f32> = body
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                eprintln!("reusing the embeddings in {}", cache.display());
                return Ok(floats.chunks(d.max(1)).map(<[f32]>::to_vec).collect());
            }
        }
    }
    let vectors = embed()?;
    let d = vectors.first().map_or(0, Vec::len);
    let mut out = Vec::with_capacity(48 + vectors.len() * d * 4);
    out.extend_from_slice(CACHE_MAGIC);
    out.extend_from_slice(&key);
    out.extend_from_slice(&(vectors.len() as u32).to_le_bytes());
    out.extend_from_slice(&(d as u32).to_le_bytes());
    for v in &vectors {
        for x in v {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    std::fs::write(cache, out).map_err(|e| TrainError::Data {
        path: cache.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(vectors)
}

/// Trains and writes the head; returns it.
pub fn train(args: &Args) -> Result<Head, TrainError> {
    let mut rows = Vec::new();
    for path in &args.data {
        rows.extend(read_rows(path, args)?);
    }
    let labels: Vec<String> = rows
        .iter()
        .map(|r| r.label.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if labels.len() < 2 {
        return Err(TrainError::Model(format!(
            "the data has {} label(s); a classifier needs at least 2",
            labels.len()
        )));
    }
    let index: BTreeMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let store = mediaflow_models::ModelStore::open(mediaflow_models::ModelStore::env_dir())
        .map_err(|e| TrainError::Model(e.to_string()))?;
    let model_err = |e: mediaflow_models::ModelError| {
        let help = e.help().map(|h| format!(" ({h})")).unwrap_or_default();
        TrainError::Model(format!("{e}{help}"))
    };
    let path = store.resolve(&args.model).map_err(model_err)?;
    let tokenizer = store
        .companion(&args.model, "tokenizer")
        .map_err(model_err)?
        .or_else(|| path.parent().map(|p| p.join("tokenizer.json")))
        .ok_or_else(|| TrainError::Model("no tokenizer".into()))?;
    let settings = store.settings(&args.model);
    let model = TextModel::load(
        &path,
        &tokenizer,
        settings["output"].as_str(),
        settings["max_tokens"].as_u64().unwrap_or(128) as usize,
    )
    .map_err(|e| TrainError::Model(e.to_string()))?;
    let sha256 = mediaflow_models::sha256_file(&path).map_err(model_err)?;

    let started = Instant::now();
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let vectors = match &args.cache {
        Some(cache) => cached(cache, &sha256, &texts, || embed_all(&model, &texts))?,
        None => embed_all(&model, &texts)?,
    };
    let embed_secs = started.elapsed().as_secs_f64();
    let (mut train_x, mut train_y, mut test_x, mut test_y) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (row, v) in rows.iter().zip(vectors) {
        let y = index[row.label.as_str()];
        if head::held_out(&row.text, args.test_percent) {
            test_x.push(v);
            test_y.push(y);
        } else {
            train_x.push(v);
            train_y.push(y);
        }
    }
    if train_x.is_empty() || test_x.is_empty() {
        return Err(TrainError::Model(format!(
            "{} training and {} held-out rows; give more data or another --test-percent",
            train_x.len(),
            test_x.len()
        )));
    }
    let training = Training {
        epochs: args.epochs,
        l2: args.l2,
        balanced: args.balanced,
        ..Training::default()
    };
    let fitted = Instant::now();
    let (weights, bias) = head::fit(&train_x, &train_y, labels.len(), &training);
    let fit_secs = fitted.elapsed().as_secs_f64();
    let mut head = Head {
        format: FORMAT.into(),
        embedding: Embedding {
            model: args.model.clone(),
            sha256,
            dims: weights.first().map_or(0, Vec::len),
        },
        labels: labels.clone(),
        weights,
        bias,
        metrics: Default::default(),
        training: serde_json::to_value(&training).unwrap_or_default(),
    };
    let predicted: Vec<usize> = test_x
        .iter()
        .map(|x| head::argmax(&head.predict(x)))
        .collect();
    let mut metrics = head::evaluate(&test_y, &predicted, &labels);
    metrics.train_rows = train_x.len();
    metrics.split = format!(
        "held out: rows whose FNV-1a 64 hash of the text, mod 100, is >= {}",
        100 - args.test_percent
    );
    head.metrics = metrics;
    let text = serde_json::to_string(&head).map_err(|e| TrainError::Model(e.to_string()))?;
    std::fs::write(&args.out, text).map_err(|e| TrainError::Data {
        path: args.out.display().to_string(),
        message: e.to_string(),
    })?;
    eprintln!(
        "embedded {} texts in {embed_secs:.1} s ({:.0}/s); fitted in {fit_secs:.1} s",
        rows.len(),
        rows.len() as f64 / embed_secs.max(1e-9)
    );
    Ok(head)
}

/// The command line: `mediaflow-onnx train-classifier ARGS`.
pub fn main(args: &[String]) -> i32 {
    let argv = std::iter::once("mediaflow train classifier".to_owned()).chain(args.iter().cloned());
    let args = match Args::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match train(&args) {
        Ok(head) => {
            let m = &head.metrics;
            if args.json {
                println!("{}", serde_json::to_string_pretty(m).unwrap_or_default());
            } else {
                println!(
                    "wrote {}: {} labels, {} training rows, {} held out; accuracy {:.3}, macro-F1 {:.3}",
                    args.out.display(),
                    head.labels.len(),
                    m.train_rows,
                    m.test_rows,
                    m.accuracy,
                    m.macro_f1
                );
                for (label, f1) in &m.f1 {
                    println!("  {label}: F1 {f1:.3}");
                }
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["train", "--data", "x", "--out", "y"];
        argv.extend_from_slice(extra);
        Args::parse_from(argv)
    }

    fn read(name: &str, content: &str, extra: &[&str]) -> Result<Vec<Row>, TrainError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        read_rows(&path, &args(extra))
    }

    fn texts_and_labels(rows: &[Row]) -> Vec<(&str, &str)> {
        rows.iter()
            .map(|r| (r.text.as_str(), r.label.as_str()))
            .collect()
    }

    #[test]
    fn csv_cells_may_hold_commas_quotes_and_line_breaks() {
        let rows = read(
            "desks.csv",
            "id,text,label\n1,\"Rates rise, again\",business\n2,\"The \"\"final\"\"\nwas abandoned\",sport\n3,,sport\n",
            &[],
        )
        .unwrap();
        let got = texts_and_labels(&rows);
        assert_eq!(
            got,
            [
                ("Rates rise, again", "business"),
                ("The \"final\"\nwas abandoned", "sport")
            ],
            "the row with an empty text is skipped"
        );
    }

    #[test]
    fn tsv_quotes_are_text_and_ratings_become_labels() {
        let rows = read(
            "reviews.tsv",
            "id\trating\ttext\n1\t2.5\tA \"great\" film\n2\t-3\tDull\n3\t0.1\tFine\n",
            &["--label-column", "rating", "--sentiment-scale", "4"],
        )
        .unwrap();
        let got = texts_and_labels(&rows);
        assert_eq!(
            got,
            [
                ("A \"great\" film", "positive"),
                ("Dull", "negative"),
                ("Fine", "neutral")
            ]
        );
    }

    #[test]
    fn bad_files_name_the_line() {
        let e = read("a.tsv", "text\tlabel\nfine\tok\ntoo\tmany\tcells\n", &[])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("a.tsv") && e.contains("line 3"), "{e}");
        let e = read("b.tsv", "words\tlabel\nx\ty\n", &[])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("line 1: no column `text`"), "{e}");
        let e = read(
            "c.tsv",
            "text\tlabel\nx\tnot a number\n",
            &["--sentiment-scale", "4"],
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("line 2") && e.contains("not a number"), "{e}");
        let bytes_dir = tempfile::tempdir().unwrap();
        let latin1 = bytes_dir.path().join("e.tsv");
        std::fs::write(&latin1, b"text\tlabel\ncaf\xe9\tx\n").unwrap();
        let e = read_rows(&latin1, &args(&[])).err().unwrap().to_string();
        assert!(e.contains("not UTF-8 (invalid byte at offset 14)"), "{e}");
    }
}

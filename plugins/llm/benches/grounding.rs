//! Invented names and numbers in headlines and summaries of real news, with grounding off
//! and on, for each pulled candidate model: the invented-entity rate (names and numbers in
//! the output that the story does not have / all names and numbers in the output), JSON
//! validity and seconds per story, side by side in one run.
//!
//! `cargo bench --profile dev --workspace --bench grounding` (needs `../shared/data/news` and
//! `mediaflow models pull smollm2-135m-instruct`; `gemma3-270m` is measured when pulled).
//! `MEDIAFLOW_BENCH_STORIES=N` changes the number of stories (50), and
//! `MEDIAFLOW_BENCH_MODELS=a,b` measures those models (catalog names or paths) instead.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{headline_flow, invented, llm_harness, models_dir, news_stories, words};
use serde_json::Value;

const CANDIDATES: &[&str] = &[
    "smollm2-135m-instruct",
    "gemma3-270m",
    "qwen2.5-coder-0.5b-instruct",
    "qwen2.5-coder-1.5b-instruct",
];

struct Row {
    model: String,
    grounded: bool,
    entities: usize,
    invented: usize,
    valid: usize,
    n: usize,
    secs: f64,
    tokens: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("MEDIAFLOW_BENCH_STORIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let Some(stories) = news_stories(n) else {
        return;
    };
    let store = mediaflow_models::ModelStore::open(models_dir()).expect("the model dir");
    let mut rows = Vec::new();
    // `MEDIAFLOW_BENCH_MODELS`: these models (catalog names or paths) instead.
    let only = std::env::var("MEDIAFLOW_BENCH_MODELS").unwrap_or_default();
    let models: Vec<String> = match only.trim() {
        "" => CANDIDATES.iter().map(|m| m.to_string()).collect(),
        list => list.split(',').map(|m| m.trim().to_owned()).collect(),
    };
    for model in &models {
        let model = model.as_str();
        if store.resolve(model).is_err() {
            eprintln!("{model}: not pulled, skipped");
            continue;
        }
        for grounded in [false, true] {
            let (h, sup) = llm_harness(&models_dir()).await;
            let flow = headline_flow(model, grounded);
            let (outputs, secs) = common::timed_stories(&h, &flow, &stories).await;
            let mut row = Row {
                model: model.to_owned(),
                grounded,
                entities: 0,
                invented: 0,
                valid: 0,
                n: stories.len(),
                secs,
                tokens: 0,
            };
            for (story, o) in stories.iter().zip(&outputs) {
                row.tokens += o["completion_tokens"].as_u64().unwrap_or(0);
                let Some(json) = o.get("json").filter(|j| j.is_object()) else {
                    continue;
                };
                row.valid += 1;
                for field in ["headline", "summary"] {
                    let text = json[field].as_str().unwrap_or_default();
                    row.entities += words(text)
                        .iter()
                        .filter(|(w, opens)| {
                            w.starts_with(|c: char| c.is_ascii_digit())
                                || (!opens && w.starts_with(char::is_uppercase))
                        })
                        .count();
                    row.invented += invented(story, text).len();
                }
            }
            if grounded && !outputs.is_empty() {
                let flagged = outputs
                    .iter()
                    .filter(|o| o["ungrounded"].as_array().is_some_and(|u| !u.is_empty()))
                    .count();
                eprintln!(
                    "{model}: {flagged} of {} outputs flagged `ungrounded`",
                    outputs.len()
                );
                if let Some(example) = outputs.first().and_then(|o| o.get("json")) {
                    eprintln!("{model}, first story: {}", Value::to_string(example));
                }
            }
            rows.push(row);
            sup.shutdown().await;
            h.cleanup().await;
        }
    }
    println!(
        "\n{:<28} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9} {:>9}",
        "model", "grounding", "entities", "invented", "rate", "valid JSON", "s/story", "tokens/s"
    );
    for r in &rows {
        println!(
            "{:<28} {:>9} {:>9} {:>9} {:>8.1}% {:>6}/{:<3} {:>9.2} {:>9.1}",
            r.model,
            if r.grounded { "on" } else { "off" },
            r.entities,
            r.invented,
            100.0 * r.invented as f64 / r.entities.max(1) as f64,
            r.valid,
            r.n,
            r.secs / r.n as f64,
            r.tokens as f64 / r.secs,
        );
    }
}

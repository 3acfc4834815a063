//! Throughput of concurrent `llm.generate` calls: a `for_each` over news stories with the
//! plugin process decoding 1 (one at a time), 4 or 8 sequences together, side by side in
//! one run. Aggregate generated tokens per second over the whole `for_each` (prompts and
//! the queue's tail included), and while the calls decode (each call's own tokens/s times
//! the calls decoding at once), for free text with a short prompt and 128 tokens to write,
//! and for grounded headline JSON (a whole story to read, about 60 tokens to write).
//!
//! `cargo bench --profile dev --workspace --bench batching` (needs `../shared/data/news`
//! and the model pulled). `MEDIAFLOW_BENCH_STORIES=N` (16) and `MEDIAFLOW_BENCH_MODEL=NAME`
//! (smollm2-135m-instruct) change what is measured.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{headline_flow, llm_harness_with, models_dir, news_stories};
use mediaflow_engine::RunControl;
use serde_json::{json, Value};

/// Generation-heavy: a short prompt (a story's opening) and 128 tokens to write.
fn continue_flow(model: &str) -> String {
    common::stories_flow(
        "write",
        model,
        "prompt: \"Continue this news story:\\n\\n${{ item[:160] }}\"\nmax_tokens: 128",
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("MEDIAFLOW_BENCH_STORIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let model = std::env::var("MEDIAFLOW_BENCH_MODEL")
        .unwrap_or_else(|_| "smollm2-135m-instruct".to_owned());
    let Some(stories) = news_stories(n) else {
        return;
    };
    let flows = [
        ("continue, 128 tokens", continue_flow(&model)),
        ("headline JSON, grounded", headline_flow(&model, true)),
    ];
    println!("{model}, {n} stories, greedy, 2 threads");
    println!(
        "{:<24} {:>11} {:>8} {:>8} {:>10} {:>10} {:>10} {:>10}",
        "job", "sequences", "tokens", "secs", "tokens/s", "vs 1", "decoding", "vs 1"
    );
    for (job, flow) in &flows {
        let mut base = None;
        for seqs in ["1", "4", "8"] {
            let (h, sup) =
                llm_harness_with(&models_dir(), &[("MEDIAFLOW_LLM_SEQUENCES", seqs)]).await;
            // Load the model first, so each row measures generation.
            let warm = json!({ "stories": [stories[0].clone()] });
            h.run_with(flow, warm, common::no_cache(), RunControl::default())
                .await;
            let (outputs, secs) = common::timed_stories(&h, flow, &stories).await;
            let tokens: u64 = outputs
                .iter()
                .filter_map(|o| o.get("completion_tokens").and_then(Value::as_u64))
                .sum();
            let rate = tokens as f64 / secs;
            // While the calls decode together: each call's own rate (from its first token
            // to its last) times the calls decoding at once.
            let per_call: f64 = outputs
                .iter()
                .filter_map(|o| o.get("tokens_per_s").and_then(Value::as_f64))
                .sum::<f64>()
                / outputs.len().max(1) as f64;
            let together = seqs.parse::<usize>().unwrap_or(1).min(outputs.len().max(1));
            let decoding = per_call * together as f64;
            let (base_rate, base_decoding) = *base.get_or_insert((rate, decoding));
            println!(
                "{job:<24} {seqs:>11} {tokens:>8} {secs:>8.1} {rate:>10.1} {:>9.2}x {decoding:>10.1} {:>9.2}x",
                rate / base_rate,
                decoding / base_decoding
            );
            if outputs.len() != stories.len() {
                println!("  ({} of {} calls succeeded)", outputs.len(), stories.len());
            }
            sup.shutdown().await;
            h.cleanup().await;
        }
    }
}

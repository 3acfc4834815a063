//! Continuous batching: concurrent `llm.generate` calls are decoded together, as sequences
//! of one llama.cpp context, and each writes what it writes on its own.

mod common;

use common::{llm_harness, llm_harness_with, models_dir, news_stories, no_cache, require_model};
use mediaflow_engine::{RunControl, RunReport};
use mediaflow_store::RunStatus;
use mediaflow_tests::Harness;
use serde_json::json;

/// A `for_each` that summarises each story in one sentence, greedy, as free text.
fn summaries() -> String {
    common::stories_flow(
        "sum",
        common::MODEL,
        "prompt: \"Summarise this story in one sentence.\\n\\n${{ item }}\"\nmax_tokens: 40",
    )
}

fn texts(r: &RunReport) -> Vec<String> {
    r.steps["sum"]
        .outputs
        .as_array()
        .expect("one output per story")
        .iter()
        .map(|o| o["text"].as_str().expect("text").to_owned())
        .collect()
}

/// Shared words over all words (Jaccard), lowercased.
fn overlap(a: &str, b: &str) -> f64 {
    use std::collections::BTreeSet;
    let set = |s: &str| -> BTreeSet<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let (a, b) = (set(a), set(b));
    let union = a.union(&b).count().max(1);
    a.intersection(&b).count() as f64 / union as f64
}

/// The largest batch any call of the run says it was decoded in (1 when none says).
async fn largest_batch(h: &Harness, r: &RunReport) -> usize {
    let logs = h.store.logs(&r.run_id).await.expect("the run's logs");
    logs.iter()
        .filter_map(|l| {
            l.message
                .strip_prefix("decoded in a batch of up to ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_for_each_is_decoded_as_one_batch_and_each_call_writes_what_it_writes_alone() {
    require_model();
    let Some(stories) = news_stories(8) else {
        return;
    };
    let inputs = json!({ "stories": stories });
    let (h, sup) = llm_harness(&models_dir()).await;
    let together = h
        .run_with(
            &summaries(),
            inputs.clone(),
            no_cache(),
            RunControl::default(),
        )
        .await;
    assert_eq!(together.status, RunStatus::Succeeded, "{together:?}");
    let batch = largest_batch(&h, &together).await;
    assert!(
        batch >= 4,
        "the 8 calls were decoded in batches of {batch} at most"
    );
    sup.shutdown().await;
    h.cleanup().await;

    // The same calls, one sequence at a time.
    let (h, sup) = llm_harness_with(&models_dir(), &[("MEDIAFLOW_LLM_SEQUENCES", "1")]).await;
    let alone = h
        .run_with(&summaries(), inputs, no_cache(), RunControl::default())
        .await;
    assert_eq!(alone.status, RunStatus::Succeeded, "{alone:?}");
    assert_eq!(largest_batch(&h, &alone).await, 1);
    // Greedy decoding batched is not bit-for-bit decoding alone (the matrix kernels sum in
    // another order; llama.cpp's repacked Q4_0 kernels take another path for many rows than
    // for one), so a near tie can tip another way, sometimes within a few words. What
    // batching must not do is mix the calls up: each summary shares more of its words with
    // its call's summary alone than with any other story's, and most start as they do alone.
    let (together, alone) = (texts(&together), texts(&alone));
    let opening = |s: &str| s.split_whitespace().take(4).collect::<Vec<_>>().join(" ");
    let (mut same, mut same_opening) = (0, 0);
    for (i, t) in together.iter().enumerate() {
        let nearest = (0..alone.len())
            .max_by(|a, b| overlap(t, &alone[*a]).total_cmp(&overlap(t, &alone[*b])))
            .unwrap_or(usize::MAX);
        assert_eq!(
            nearest, i,
            "story {i}'s summary is nearest story {nearest}'s: {t:?} / alone {:?}",
            alone[i]
        );
        same_opening += usize::from(opening(t) == opening(&alone[i]));
        same += usize::from(*t == alone[i]);
    }
    eprintln!(
        "{same} of {n} summaries identical batched and alone, {same_opening} with the same first four words",
        n = alone.len()
    );
    assert!(
        same_opening * 4 >= alone.len() * 3,
        "only {same_opening} of {} summaries start as they do alone: {together:?} / {alone:?}",
        alone.len()
    );
    sup.shutdown().await;
    h.cleanup().await;
}

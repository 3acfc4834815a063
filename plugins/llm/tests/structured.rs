//! Structured output on real news copy: with `json_schema`, a step that succeeds has JSON
//! that parses and validates, whatever `max_tokens` is and however the model loops.

mod common;

use common::{llm_harness, models_dir, news_stories, require, DEFAULT_MODEL};
use mediaflow_store::RunStatus;
use serde_json::{json, Value};

/// Three unbounded string arrays and an unbounded string: the shape that used to end in
/// `invalid_json` when the model listed items until the budget ran out.
fn entity_schema() -> Value {
    json!({
        "type": "object",
        "required": ["people", "places", "organisations", "summary"],
        "properties": {
            "people": { "type": "array", "items": { "type": "string" } },
            "places": { "type": "array", "items": { "type": "string" } },
            "organisations": { "type": "array", "items": { "type": "string" } },
            "summary": { "type": "string" }
        }
    })
}

/// Runs the extraction on `stories` with `max_tokens` and returns each item's outputs,
/// after checking each one's text parses, validates and equals its `json`.
async fn extract(stories: &[String], max_tokens: u32) -> Vec<Value> {
    let (h, sup) = llm_harness(&models_dir()).await;
    let schema = entity_schema();
    let flow = format!(
        r#"
inputs:
  stories: list
steps:
  extract:
    uses: llm.generate
    for_each: ${{{{ inputs.stories }}}}
    with:
      model: {DEFAULT_MODEL}
      system: You extract facts from news stories. Answer with JSON only.
      prompt: "List the people, places and organisations named in this story, then summarise it.\n\n${{{{ item }}}}"
      temperature: 0
      max_tokens: {max_tokens}
      json_schema: {schema}
"#
    );
    let r = h.run(&flow, json!({ "stories": stories })).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    let validator = jsonschema::validator_for(&schema).unwrap();
    let outputs = r.steps["extract"].outputs.as_array().unwrap().clone();
    assert_eq!(outputs.len(), stories.len());
    for (i, o) in outputs.iter().enumerate() {
        eprintln!(
            "story {i}: {} tokens, {}, repairs {}",
            o["completion_tokens"], o["finish_reason"], o["repairs"]
        );
        let text = o["text"].as_str().unwrap();
        let parsed: Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("story {i}: {e}: {text}"));
        assert!(validator.is_valid(&parsed), "story {i}: {parsed}");
        assert_eq!(parsed, o["json"], "story {i}");
    }
    sup.shutdown().await;
    h.cleanup().await;
    outputs
}

/// 48 tokens cannot hold three lists and a summary of a 200-word story: every output is
/// closed at the budget with the shortest valid ending, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_arrays_under_a_small_budget_are_valid_for_twenty_stories() {
    let Some(stories) = news_stories(20) else {
        return;
    };
    require(DEFAULT_MODEL);
    let outputs = extract(&stories, 48).await;
    let closed = outputs
        .iter()
        .filter(|o| o["finish_reason"] == "budget")
        .count();
    for o in &outputs {
        let reason = o["finish_reason"].as_str().unwrap();
        assert!(reason == "stop" || reason == "budget", "{o}");
        if reason == "budget" {
            assert!(
                o["repairs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r == "closed at the token budget"),
                "{o}"
            );
        }
    }
    assert!(
        closed > 0,
        "no story needed closing at 48 tokens: {outputs:?}"
    );
}

/// With room to spare the model loops instead (the same item again and again): the loop is
/// cut and the output stays valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generous_budget_does_not_let_the_model_loop_into_invalid_json() {
    let Some(stories) = news_stories(20) else {
        return;
    };
    require(DEFAULT_MODEL);
    let outputs = extract(&stories, 600).await;
    for o in &outputs {
        let json = &o["json"];
        for list in ["people", "places", "organisations"] {
            let items = json[list].as_array().unwrap();
            let mut unique = items.clone();
            unique.sort_by_key(|v| v.to_string());
            unique.dedup();
            assert_eq!(unique.len(), items.len(), "a repeated item in {list}: {o}");
        }
    }
}

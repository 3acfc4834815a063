//! `llm.generate` on the real SmolLM2-135M-Instruct model, through the process protocol and
//! the engine. The model must be pulled first (`scripts/test.sh` does it):
//! `mediaflow models pull smollm2-135m-instruct`.

use std::time::Duration;

use mediaflow_engine::RunControl;
use mediaflow_process_host::Supervisor;
use mediaflow_store::{RunStatus, StepStatus};
use mediaflow_tests::Harness;
use serde_json::{json, Value};

mod common;

use common::{llm_harness, models_dir, no_cache, require_model, wasm_llm_harness, MODEL};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_generation_is_deterministic_and_stop_strings_work() {
    require_model();
    let (h, sup) = llm_harness(&models_dir()).await;
    let flow = format!(
        r#"
steps:
  gen:
    uses: llm.generate
    with: {{ model: {MODEL}, prompt: "Name three rivers in England.", temperature: 0, seed: 7, max_tokens: 40 }}
  count:
    uses: llm.generate
    with: {{ model: {MODEL}, raw: true, prompt: "1, 2, 3, 4, 5,", temperature: 0, max_tokens: 30, stop: [" 9"] }}
"#
    );
    let a = h
        .run_with(&flow, json!({}), no_cache(), RunControl::default())
        .await;
    let b = h
        .run_with(&flow, json!({}), no_cache(), RunControl::default())
        .await;
    assert_eq!(a.status, RunStatus::Succeeded, "{a:?}");
    let text = a.steps["gen"].outputs["text"].as_str().unwrap();
    assert!(!text.trim().is_empty());
    assert_eq!(
        a.steps["gen"].outputs["text"], b.steps["gen"].outputs["text"],
        "same settings, same text"
    );
    assert!(a.steps["gen"].outputs["tokens_per_s"].as_f64().unwrap() > 0.0);
    let counted = a.steps["count"].outputs["text"].as_str().unwrap();
    assert_eq!(
        a.steps["count"].outputs["finish_reason"], "stop",
        "{counted:?}"
    );
    assert!(
        counted.contains('8') && !counted.contains('9'),
        "stopped before 9: {counted:?}"
    );
    assert_eq!(
        sup.starts(),
        1,
        "the model stays loaded in one process across runs"
    );
    sup.shutdown().await;
    h.cleanup().await;
}

const SNIPPETS: [&str; 10] = [
    "Heavy rain flooded the main road into Carlisle on Monday, and police closed it for six hours.",
    "The national orchestra announced a free summer concert series in five city parks.",
    "A local bakery won the regional award for the best sourdough loaf for the third year running.",
    "Train drivers will strike on Friday after talks over pay broke down, the union said.",
    "Scientists at the university found a new species of beetle in an old oak forest.",
    "The football club sacked its manager after a run of eight defeats in ten games.",
    "A fire at a warehouse near the docks was brought under control by forty firefighters.",
    "The town's library will stay open until 10pm on weekdays from next month.",
    "Electricity prices will fall by four percent in April, the energy regulator said.",
    "A hospital trust opened a new children's ward with twenty beds and a play area.",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_schema_output_parses_and_validates_for_ten_prompts() {
    require_model();
    let (h, sup) = llm_harness(&models_dir()).await;
    let schema = json!({
        "type": "object",
        "required": ["headline", "people", "places", "organisations"],
        "properties": {
            "headline": {"type": "string", "minLength": 5, "maxLength": 100},
            "people": {"type": "array", "maxItems": 4, "items": {"type": "string", "maxLength": 40}},
            "places": {"type": "array", "maxItems": 4, "items": {"type": "string", "maxLength": 40}},
            "organisations": {"type": "array", "maxItems": 4, "items": {"type": "string", "maxLength": 40}}
        }
    });
    let flow = format!(
        r#"
inputs:
  snippets: list
steps:
  extract:
    uses: llm.generate
    for_each: ${{{{ inputs.snippets }}}}
    with:
      model: {MODEL}
      system: Extract facts from news. Answer with JSON only.
      prompt: "Give a headline and the people, places and organisations named in: ${{{{ item }}}}"
      temperature: 0
      max_tokens: 300
      json_schema: {schema}
"#
    );
    let r = h.run(&flow, json!({"snippets": SNIPPETS})).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    let validator = jsonschema::validator_for(&schema).unwrap();
    let outputs = r.steps["extract"].outputs.as_array().unwrap();
    assert_eq!(outputs.len(), 10);
    for (i, o) in outputs.iter().enumerate() {
        let parsed: Value = serde_json::from_str(o["text"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("prompt {i}: {e}: {o}"));
        assert!(validator.is_valid(&parsed), "prompt {i}: {parsed}");
        assert_eq!(parsed, o["json"]);
    }
    sup.shutdown().await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_gguf_fails_its_step_and_everything_survives() {
    require_model();
    let (h, sup) = llm_harness(&models_dir()).await;
    let real = mediaflow_models::ModelStore::open(models_dir())
        .unwrap()
        .resolve(MODEL)
        .unwrap();
    let bytes = std::fs::read(&real).unwrap();
    let broken = h.dir.path().join("truncated.gguf");
    std::fs::write(&broken, &bytes[..bytes.len() / 3]).unwrap();
    let garbage = h.dir.path().join("garbage.gguf");
    std::fs::write(&garbage, b"this is not a model at all").unwrap();
    let flow = format!(
        r#"
steps:
  truncated: {{ uses: llm.generate, with: {{ model: "{}", prompt: hi, max_tokens: 5 }} }}
  garbage: {{ uses: llm.generate, needs: [truncated_done], with: {{ model: "{}", prompt: hi, max_tokens: 5 }} }}
  truncated_done: {{ uses: core.delay, with: {{ duration: 0 }} }}
  fine: {{ uses: llm.generate, needs: [garbage_done], with: {{ model: {MODEL}, prompt: "Say hello.", max_tokens: 8, temperature: 0 }} }}
  garbage_done: {{ uses: core.delay, with: {{ duration: 0 }} }}
"#,
        broken.display(),
        garbage.display()
    );
    let r = h.run(&flow, json!({})).await;
    for step in ["truncated", "garbage"] {
        let s = &r.steps[step];
        assert_eq!(s.status, StepStatus::Failed, "{step}");
        let e = s.error.clone().unwrap();
        assert_eq!(e["code"], "model_load", "{step}: {e}");
        assert!(
            e["message"].as_str().unwrap().contains("cannot load model"),
            "{e}"
        );
    }
    assert_eq!(r.steps["fine"].status, StepStatus::Succeeded);
    assert_eq!(sup.starts(), 1, "the plugin process survived the bad files");
    sup.shutdown().await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_model_names_the_pull_command() {
    let empty = tempfile::tempdir().unwrap();
    let (h, sup) = llm_harness(empty.path()).await;
    let r = h
        .run(
            &format!(
                "steps:\n  g: {{ uses: llm.generate, with: {{ model: {MODEL}, prompt: hi }} }}\n"
            ),
            json!({}),
        )
        .await;
    let e = r.steps["g"].error.clone().unwrap();
    assert_eq!(e["code"], "model_not_installed");
    assert!(
        e["help"]
            .as_str()
            .unwrap()
            .contains("mediaflow models pull smollm2-135m-instruct"),
        "{e}"
    );
    assert_eq!(r.steps["g"].attempts, 1, "not retried");
    sup.shutdown().await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_plugin_process_mid_generation_fails_only_that_step() {
    require_model();
    let (h, sup) = llm_harness(&models_dir()).await;
    let killer = mediaflow_tests::kill_when_running(sup.clone(), Duration::from_millis(300));
    let flow = format!(
        r#"
steps:
  long: {{ uses: llm.generate, with: {{ model: {MODEL}, raw: true, prompt: "Once upon a time", max_tokens: 2000, temperature: 0 }} }}
  independent: {{ uses: text.template, with: {{ template: still here }} }}
"#
    );
    let r = h
        .run_with(&flow, json!({}), no_cache(), RunControl::default())
        .await;
    killer.await.unwrap();
    assert_eq!(r.steps["long"].status, StepStatus::Failed, "{r:?}");
    assert_eq!(
        r.steps["long"].error.as_ref().unwrap()["code"],
        "plugin_crashed"
    );
    assert_eq!(r.steps["independent"].status, StepStatus::Succeeded);
    // The next call starts a fresh process.
    let again = h.run(&format!("steps:\n  g: {{ uses: llm.generate, with: {{ model: {MODEL}, prompt: hi, max_tokens: 4 }} }}\n"), json!({})).await;
    assert_eq!(again.status, RunStatus::Succeeded);
    assert_eq!(sup.starts(), 2);
    sup.shutdown().await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_plugin_granted_llm_calls_the_model_and_one_not_granted_is_refused() {
    require_model();
    let (h, sup, capable) = wasm_llm_harness().await;
    let flow = format!(
        r#"
steps:
  granted:
    uses: "wasm:{path}"
    permissions: [llm]
    with: {{ use: llm, model: {MODEL}, prompt: "Name a colour." }}
  refused:
    uses: "wasm:{path}"
    with: {{ use: llm, model: {MODEL}, prompt: "Name a colour." }}
"#,
        path = capable.display()
    );
    let r = h.run(&flow, json!({})).await;
    assert_eq!(r.steps["granted"].status, StepStatus::Succeeded, "{r:?}");
    let text = r.steps["granted"].outputs["text"].as_str().unwrap();
    assert!(
        !text.trim().is_empty(),
        "the model answered through the host"
    );
    assert_eq!(r.steps["refused"].status, StepStatus::Failed);
    let e = r.steps["refused"].error.clone().unwrap();
    assert_eq!(e["code"], "permission_denied", "{e}");
    assert_eq!(
        e["message"],
        "step `refused` did not grant `llm` to plugin `test.capable`"
    );
    // The plugin's log line and the model's progress reached the granted step's log.
    let logs = h.store.logs(&r.run_id).await.unwrap();
    assert!(
        logs.iter()
            .any(|l| l.step_id == "granted" && l.message == "asking the model"),
        "{logs:?}"
    );
    sup.shutdown().await;
    h.cleanup().await;
}

/// A step's `timeout:` reaches the plugin process: the generation is cancelled in there, so
/// the next call on the same process starts at once instead of queueing behind an
/// abandoned job, and the process is not restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_timeout_stops_the_generation_inside_the_process() {
    require_model();
    let (h, sup) = llm_harness(&models_dir()).await;
    // Counting goes on for the whole budget: 2,000 tokens, far longer than the timeout.
    let long = format!(
        "steps:\n  long: {{ uses: llm.generate, timeout: 1s, with: {{ model: {MODEL}, raw: true, prompt: \"1, 2, 3, 4, 5,\", max_tokens: 2000, temperature: 0 }} }}\n"
    );
    a_timeout_cancels_the_generation(&h, &sup, &long).await;
    sup.shutdown().await;
    h.cleanup().await;
}

/// The same through a WebAssembly plugin's `llm` import: the step's timeout drops the
/// guest's call while it waits for the model, and `Cancel` reaches the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_timeout_stops_a_wasm_plugins_generation_inside_the_process() {
    require_model();
    let (h, sup, capable) = wasm_llm_harness().await;
    let long = format!(
        "steps:\n  long: {{ uses: \"wasm:{}\", timeout: 1s, permissions: [llm], with: {{ use: llm, model: {MODEL}, raw: true, prompt: \"1, 2, 3, 4, 5,\", max_tokens: 2000 }} }}\n",
        capable.display()
    );
    a_timeout_cancels_the_generation(&h, &sup, &long).await;
    sup.shutdown().await;
    h.cleanup().await;
}

/// Runs `long` (a step `long` that generates far past its 1 s timeout): the process must
/// stop that generation part-way (it says so on stderr, with the tokens it made), and the
/// next call runs on the same process.
async fn a_timeout_cancels_the_generation(h: &Harness, sup: &Supervisor, long: &str) {
    let short = format!(
        "steps:\n  g: {{ uses: llm.generate, with: {{ model: {MODEL}, raw: true, prompt: \"1, 2, 3,\", max_tokens: 8, temperature: 0 }} }}\n"
    );
    // Load the model first, so the timeout falls in the middle of generating.
    let warm = h
        .run_with(&short, json!({}), no_cache(), RunControl::default())
        .await;
    assert_eq!(warm.status, RunStatus::Succeeded, "{warm:?}");
    let tokens_per_s = warm.steps["g"].outputs["tokens_per_s"].as_f64().unwrap();
    assert!(
        2000.0 / tokens_per_s > 8.0,
        "the long step must outlast the timeout by far ({tokens_per_s} tokens/s)"
    );

    let timed_out = h
        .run_with(long, json!({}), no_cache(), RunControl::default())
        .await;
    assert_eq!(timed_out.steps["long"].status, StepStatus::Failed);
    assert_eq!(
        timed_out.steps["long"].error.as_ref().unwrap()["code"],
        "timeout",
        "{timed_out:?}"
    );
    // Had the generation gone on in the process, it would end at the full 2,000 tokens and
    // say nothing; the line says where the cancel stopped it. (The wait is only a bound on a
    // broken build, not a speed check.)
    let (mut stopped, mut tail) = (None, Vec::new());
    for _ in 0..600 {
        tail = sup.stderr_tail().await;
        stopped = tail.iter().find_map(|l| {
            let rest = l.split("the generation was cancelled after ").nth(1)?;
            rest.split(' ').next()?.parse::<u32>().ok()
        });
        if stopped.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let made = stopped.unwrap_or_else(|| {
        panic!("the process never reported the cancelled generation; stderr: {tail:?}")
    });
    assert!(
        made < 2000,
        "the generation ran to its budget ({made} tokens)"
    );
    let next = h
        .run_with(&short, json!({}), no_cache(), RunControl::default())
        .await;
    assert_eq!(next.status, RunStatus::Succeeded, "{next:?}");
    assert_eq!(sup.starts(), 1, "stopped by Cancel, not by a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_structured_step_keeps_the_models_text_in_its_log() {
    require_model();
    let (h, sup) = llm_harness(&models_dir()).await;
    // `pattern` is outside what the structured decoder enforces, so llama.cpp's grammar
    // decodes this one, and four tokens cannot hold the object: `invalid_json`.
    let flow = format!(
        r#"
steps:
  extract:
    uses: llm.generate
    with:
      model: {MODEL}
      prompt: "Name the people in: The mayor, Anna Berg, met the union leader Tom Hale."
      temperature: 0
      max_tokens: 4
      json_schema: {{ type: object, required: [people], properties: {{ people: {{ type: array, items: {{ type: string, pattern: "^[A-Z]" }} }} }} }}
"#
    );
    let r = h.run(&flow, json!({})).await;
    let step = &r.steps["extract"];
    assert_eq!(step.status, StepStatus::Failed, "{r:?}");
    assert_eq!(step.error.clone().unwrap()["code"], "invalid_json");
    let logs = h.store.logs(&r.run_id).await.unwrap();
    let kept = logs
        .iter()
        .find(|l| {
            l.step_id == "extract"
                && l.message
                    .starts_with("the model's output (4 tokens, stopped by length):\n")
        })
        .unwrap_or_else(|| panic!("no log line with the model's text: {logs:?}"));
    let text = kept.message.split_once('\n').unwrap().1;
    assert!(text.trim_start().starts_with('{'), "{text:?}");
    assert!(
        logs.iter().any(|l| l.step_id == "extract"
            && l.message
                .contains("/properties/people/items: `pattern` is not enforced")),
        "the fallback is explained: {logs:?}"
    );
    sup.shutdown().await;
    h.cleanup().await;
}

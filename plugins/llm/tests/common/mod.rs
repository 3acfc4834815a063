//! What the `llm.generate` test files share: the model, the harness and the news copy.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mediaflow_engine::EngineOptions;
use mediaflow_process_host::{describe, Supervisor};
use mediaflow_tests::{Db, Harness};

/// The fast model most tests use.
pub const MODEL: &str = "smollm2-135m-instruct";
/// The example workflows' default model, which the structured-output and grounding tests
/// hold to their promises.
pub const DEFAULT_MODEL: &str = "qwen2.5-coder-0.5b-instruct";

pub fn models_dir() -> PathBuf {
    std::env::var_os("MEDIAFLOW_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".local/share/mediaflow/models")
        })
}

pub fn require_model() {
    require(MODEL);
}

/// Fails with the command that pulls `name` when it is not in the model dir.
pub fn require(name: &str) {
    let store = mediaflow_models::ModelStore::open(models_dir()).unwrap();
    if let Err(e) = store.resolve(name) {
        panic!(
            "{e}: {} (or run ./scripts/test.sh, which pulls it)",
            e.help().unwrap_or_default()
        );
    }
}

pub async fn llm_harness(models: &Path) -> (Harness, Arc<Supervisor>) {
    llm_harness_with(models, &[]).await
}

/// [`llm_harness`] with these settings in the plugin process's environment
/// (`MEDIAFLOW_LLM_SEQUENCES`, ...).
pub async fn llm_harness_with(models: &Path, env: &[(&str, &str)]) -> (Harness, Arc<Supervisor>) {
    let mut h = Harness::new(Db::Sqlite).await;
    let binary = describe(Path::new(env!("CARGO_BIN_EXE_mediaflow-llm")))
        .await
        .expect("mediaflow-llm describes itself");
    let mut vars = vec![("MEDIAFLOW_MODELS".into(), models.display().to_string())];
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let sup = Supervisor::new(binary, vars);
    h.register(sup.plugins());
    (h, sup)
}

/// [`llm_harness`] that also loads WebAssembly plugins, and the path of the `capable` test
/// guest, which calls the model through its `llm` import.
pub async fn wasm_llm_harness() -> (Harness, Arc<Supervisor>, PathBuf) {
    use mediaflow_wasm_host::{WasmConfig, WasmLoader, WasmRuntime};
    let (mut h, sup) = llm_harness(&models_dir()).await;
    let runtime = WasmRuntime::new(WasmConfig::default()).unwrap();
    h.registry
        .add_loader("wasm", Arc::new(WasmLoader { runtime }));
    (h, sup, mediaflow_tests::guests::guest("capable"))
}

pub fn no_cache() -> EngineOptions {
    EngineOptions {
        no_cache: true,
        ..EngineOptions::default()
    }
}

/// The first `n` stories of the shared news copy (one story per line), or `None` with a
/// message when `../shared` is not beside the checkout.
pub fn news_stories(n: usize) -> Option<Vec<String>> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/news/abc_news_293.txt");
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .take(n)
                .map(str::to_owned)
                .collect(),
        ),
        Err(e) => {
            eprintln!(
                "skipped: the news copy {} is not readable ({e})",
                path.display()
            );
            None
        }
    }
}

/// Words as the grounding checks see them: runs of letters and digits (with inner `,` `.` `'`
/// `-`), each with whether it opens a sentence.
pub fn words(text: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut opens = true;
    let mut next_opens = true;
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let inner = matches!(c, ',' | '.' | '\'' | '’' | '-')
            && !word.is_empty()
            && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
        if c.is_alphanumeric() || inner {
            if word.is_empty() {
                opens = next_opens;
                next_opens = false;
            }
            word.push(c);
        } else {
            if !word.is_empty() {
                out.push((std::mem::take(&mut word), opens));
            }
            if matches!(c, '.' | '!' | '?' | ':' | ';' | '"' | '“' | '”' | '\n') {
                next_opens = true;
            }
        }
    }
    if !word.is_empty() {
        out.push((word, opens));
    }
    out
}

/// A word as the checks compare it: a number by its digits (commas dropped, a trailing
/// ordinal or unit ignored: "4,000" and "4000th" are "4000"), a word lowercased without a
/// possessive.
fn key(w: &str) -> String {
    if w.starts_with(|c: char| c.is_ascii_digit()) {
        let digits: String = w
            .chars()
            .take_while(|c| c.is_ascii_digit() || matches!(c, ',' | '.'))
            .filter(|c| *c != ',')
            .collect();
        return digits.trim_end_matches('.').to_owned();
    }
    let w = w.to_lowercase().replace('’', "'");
    w.strip_suffix("'s").unwrap_or(&w).to_owned()
}

/// Names and numbers in `text` that `story` does not have: a number that is not one of the
/// story's, or a capitalised word inside a sentence that the story never uses. A grounded
/// name passes this word by word.
pub fn invented(story: &str, text: &str) -> Vec<String> {
    let known: Vec<String> = words(story).iter().map(|(w, _)| key(w)).collect();
    words(text)
        .into_iter()
        .filter(|(w, opens)| {
            let numeric = w.starts_with(|c: char| c.is_ascii_digit());
            let name = !opens && w.starts_with(char::is_uppercase);
            (numeric || name) && !known.contains(&key(w))
        })
        .map(|(w, _)| w)
        .collect()
}

/// A `for_each` over `inputs.stories` whose step `step` calls `llm.generate` on each story
/// with `model`, greedy, and these further `with:` settings (one a line, unindented; the
/// story is `${{ item }}`).
pub fn stories_flow(step: &str, model: &str, with: &str) -> String {
    let with: String = with
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("      {l}\n"))
        .collect();
    format!(
        "inputs:\n  stories: list\nsteps:\n  {step}:\n    uses: llm.generate\n    for_each: ${{{{ inputs.stories }}}}\n    with:\n      model: {model}\n      temperature: 0\n{with}"
    )
}

/// A `for_each` over `inputs.stories` that writes a headline and a two-sentence summary of
/// each as JSON, greedy, grounded in the story when `grounded`.
pub fn headline_flow(model: &str, grounded: bool) -> String {
    let ground = if grounded {
        "ground_in: ${{ item }}"
    } else {
        ""
    };
    stories_flow(
        "write",
        model,
        &format!(
            r#"system: You are a news sub-editor. Answer with JSON only.
prompt: "Write a headline and a two-sentence summary of this story, with its key names and numbers.\n\n${{{{ item }}}}"
max_tokens: 160
{ground}
json_schema:
  type: object
  required: [headline, summary]
  properties:
    headline: {{ type: string, maxLength: 120 }}
    summary: {{ type: string, maxLength: 500 }}"#
        ),
    )
}

/// Runs `flow` on `stories` without the cache and times it: the `write` step's outputs
/// (one per story that succeeded) and the seconds the run took.
pub async fn timed_stories(
    h: &Harness,
    flow: &str,
    stories: &[String],
) -> (Vec<serde_json::Value>, f64) {
    let started = std::time::Instant::now();
    let r = h
        .run_with(
            flow,
            serde_json::json!({ "stories": stories }),
            no_cache(),
            mediaflow_engine::RunControl::default(),
        )
        .await;
    let secs = started.elapsed().as_secs_f64();
    let outputs = r.steps["write"]
        .outputs
        .as_array()
        .cloned()
        .unwrap_or_default();
    (outputs, secs)
}

//! Embedding collections end to end: `text.embed` with `store:` and `text.search` in the
//! real `mediaflow-onnx` process, reaching the host's store through protocol host calls,
//! on SQLite and on the real PostgreSQL; and `text.sentiment`'s `engine: llm` reaching
//! `llm.generate` (the real `mediaflow-llm` process) the same way.

mod common;

use common::run::{error_code, harness, register_llm, require_models};
use mediaflow_store::{RunStatus, StepStatus};
use mediaflow_tests::Db;
use serde_json::{json, Value};

const STORIES: &str = r#"
      - { id: bridge, title: "Bridge approved", text: "The council approved a new bridge across the river after a long debate about the cost." }
      - { id: final, title: "Cup final", text: "The striker scored twice as United won the cup final in front of a sold-out stadium." }
      - { id: rates, title: "Rates rise", text: "The central bank raised interest rates again to slow inflation, and mortgage costs will climb." }
      - { id: flood, title: "Flood warning", text: "Residents were evacuated as floodwater rose after three days of heavy rain." }
      - { id: vaccine, title: "Vaccine trial", text: "Researchers said the new vaccine cut hospital admissions by half in a large trial." }
      - { id: election, title: "Election called", text: "The prime minister called an early election, and the opposition leader welcomed the vote." }
"#;

fn hit_ids(v: &Value) -> Vec<String> {
    v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect()
}

async fn stored_stories_are_found_by_meaning(db: Db) {
    require_models(&["minilm-l6", "minilm-l3"]);
    let (h, sup) = harness(db).await;
    let flow = format!(
        r#"
steps:
  embed:
    uses: text.embed
    for_each: {STORIES}
    with:
      text: "${{{{ item.text }}}}"
      store: {{ collection: news, id: "${{{{ item.id }}}}", metadata: {{ title: "${{{{ item.title }}}}" }} }}
  money:
    uses: text.search
    needs: [embed]
    with: {{ query: "borrowing is getting more expensive for home owners", collection: news, k: 3 }}
  sport:
    uses: text.search
    needs: [embed]
    with: {{ query: "football match result", collection: news, k: 2, mode: approximate }}
  weather:
    uses: text.search
    needs: [embed]
    with: {{ query: "storm damage and rising rivers", collection: news, k: 6, min_score: 0.3 }}
"#
    );
    let r = h.run(&flow, json!({})).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    let stored: Vec<&str> = r.steps["embed"]
        .outputs
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["stored"].as_str().unwrap())
        .collect();
    assert_eq!(
        stored,
        ["bridge", "final", "rates", "flood", "vaccine", "election"]
    );

    let money = &r.steps["money"].outputs;
    println!("money: {money}");
    assert_eq!(hit_ids(money)[0], "rates");
    assert_eq!(money["mode"], "exact");
    assert_eq!(money["searched"], 6);
    let best = &money["hits"][0];
    assert_eq!(best["metadata"]["title"], "Rates rise");
    assert!(best["text"]
        .as_str()
        .unwrap()
        .starts_with("The central bank"));
    let scores: Vec<f64> = money["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");

    let sport = &r.steps["sport"].outputs;
    assert_eq!(sport["mode"], "approximate");
    assert_eq!(hit_ids(sport)[0], "final");

    let weather = &r.steps["weather"].outputs;
    let ids = hit_ids(weather);
    assert_eq!(ids[0], "flood");
    assert!(
        ids.len() < 6,
        "min_score leaves the unrelated stories out: {ids:?}"
    );

    // Storing again replaces by id; another model is refused and changes nothing; a
    // missing collection is a clear error; the search sees the new text.
    let again = r#"
steps:
  update:
    uses: text.embed
    with:
      text: "The cup final was abandoned because of a waterlogged pitch after heavy rain."
      store: { collection: news, id: final, metadata: { title: "Final abandoned" } }
  other_model:
    uses: text.embed
    with:
      text: "Markets fell sharply."
      model: minilm-l3
      store: { collection: news, id: markets }
  search_l3:
    uses: text.search
    with: { query: "markets", collection: news, model: minilm-l3 }
  missing:
    uses: text.search
    with: { query: "anything", collection: nowhere }
  after:
    uses: text.search
    needs: [update]
    with: { query: "waterlogged pitch", collection: news, k: 1, mode: exact }
"#;
    let r = h.run(again, json!({})).await;
    assert_eq!(r.steps["update"].status, StepStatus::Succeeded);
    assert_eq!(error_code(&r, "other_model"), "wrong_model");
    let message = r.steps["other_model"].error.as_ref().unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("minilm-l6") && message.contains("minilm-l3"),
        "{message}"
    );
    assert_eq!(error_code(&r, "search_l3"), "wrong_model");
    assert_eq!(error_code(&r, "missing"), "no_collection");
    let after = &r.steps["after"].outputs;
    assert_eq!(after["searched"], 6, "replaced, not added: {after}");
    assert_eq!(after["hits"][0]["id"], "final");
    assert_eq!(after["hits"][0]["metadata"]["title"], "Final abandoned");
    drop(sup);
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_stories_are_found_by_meaning_on_sqlite() {
    stored_stories_are_found_by_meaning(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_stories_are_found_by_meaning_on_postgres() {
    stored_stories_are_found_by_meaning(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_llm_engine_scores_sentiment_through_llm_generate() {
    require_models(&["smollm2-135m-instruct"]);
    let (mut h, onnx) = harness(Db::Sqlite).await;
    let llm = register_llm(&mut h).await;
    let flow = r#"
steps:
  mood:
    uses: text.sentiment
    for_each:
      - "An absolutely wonderful film, moving and beautifully acted. I loved it."
      - "A dull, clumsy mess. Terrible acting, and I wanted my money back."
    with: { text: "${{ item }}", engine: llm }
"#;
    let misused = "steps:\n  m:\n    uses: text.sentiment\n    with: { text: fine, engine: llm, head: x.json }\n";
    let diagnostic = match mediaflow_workflow::compile_str("misused.yaml", misused, &h.registry) {
        Ok(_) => panic!("`head` with `engine: llm` compiles"),
        Err(d) => d.render(false),
    };
    assert!(
        diagnostic.contains("invalid `with/head`") && diagnostic.contains("llm_model"),
        "{diagnostic}"
    );
    let r = h.run(flow, json!({})).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    let mood = r.steps["mood"].outputs.as_array().unwrap();
    for m in mood {
        println!("llm sentiment: {m}");
        let s = &m["scores"];
        let total: f64 = ["negative", "neutral", "positive"]
            .iter()
            .map(|l| s[l].as_f64().unwrap())
            .sum();
        assert!((total - 1.0).abs() < 1e-6, "{m}");
        let compound = s["positive"].as_f64().unwrap() - s["negative"].as_f64().unwrap();
        assert!((m["compound"].as_f64().unwrap() - compound).abs() < 1e-9);
        // Probabilities from the model's likelihoods, not a one-hot answer.
        assert!(s["positive"].as_f64().unwrap() > 0.0 && s["positive"].as_f64().unwrap() < 1.0);
    }
    assert!(
        mood[0]["compound"].as_f64().unwrap() > mood[1]["compound"].as_f64().unwrap(),
        "the glowing review scores above the angry one"
    );
    drop((onnx, llm));
}

/// `engine: llm` against the default head on held-out rows of the shared review data (the
/// rows the head was not trained on; every 40th, to keep the test short): macro-F1 of each.
/// The head is the default because it is the better of the two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_head_beats_the_llm_engine_on_held_out_reviews() {
    let data =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/sentiment");
    if !data.is_dir() {
        eprintln!(
            "skipped: {} is absent (the shared data is beside the repository)",
            data.display()
        );
        return;
    }
    require_models(&["smollm2-135m-instruct", "minilm-l6"]);
    let mut args = <mediaflow_onnx::train::Args as clap::Parser>::parse_from([
        "train",
        "--data",
        "x",
        "--out",
        "y",
        "--label-column",
        "rating",
        "--sentiment-scale",
        "4",
    ]);
    args.data = vec![
        data.join("movie_reviews.tsv"),
        data.join("amazon_reviews.tsv"),
    ];
    let mut rows = Vec::new();
    for f in &args.data {
        rows.extend(mediaflow_onnx::train::read_rows(f, &args).unwrap());
    }
    rows.retain(|r| mediaflow_onnx::head::held_out(&r.text, 20));
    let rows: Vec<_> = rows.into_iter().step_by(40).collect();
    let labels: Vec<String> = ["negative", "neutral", "positive"]
        .map(String::from)
        .to_vec();
    let truth: Vec<usize> = rows
        .iter()
        .map(|r| labels.iter().position(|l| *l == r.label).unwrap())
        .collect();
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();

    let (mut h, onnx) = harness(Db::Sqlite).await;
    let llm = register_llm(&mut h).await;
    let flow = r#"
inputs:
  texts: list
steps:
  head:
    uses: text.sentiment
    for_each: ${{ inputs.texts }}
    with: { text: "${{ item }}" }
  llm:
    uses: text.sentiment
    for_each: ${{ inputs.texts }}
    with: { text: "${{ item }}", engine: llm }
"#;
    let r = h.run(flow, json!({ "texts": texts })).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    let score = |step: &str| {
        let predicted: Vec<usize> = r.steps[step]
            .outputs
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                labels
                    .iter()
                    .position(|l| o["label"] == l.as_str())
                    .unwrap()
            })
            .collect();
        mediaflow_onnx::head::evaluate(&truth, &predicted, &labels)
    };
    let (head, by_llm) = (score("head"), score("llm"));
    println!(
        "{} held-out rows: head macro-F1 {:.3} (accuracy {:.3}); engine: llm (smollm2-135m-instruct) macro-F1 {:.3} (accuracy {:.3}, F1 {:?})",
        truth.len(), head.macro_f1, head.accuracy, by_llm.macro_f1, by_llm.accuracy, by_llm.f1
    );
    assert!(
        head.macro_f1 > by_llm.macro_f1,
        "{} vs {}",
        head.macro_f1,
        by_llm.macro_f1
    );
    drop((onnx, llm));
}

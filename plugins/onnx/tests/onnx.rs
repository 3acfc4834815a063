//! The ONNX plugins through the real `mediaflow-onnx` process and the engine, on real models
//! (`open-nsfw`, `minilm-l6`, `minilm-l3`; `./scripts/test.sh` pulls them) and real photos
//! (scikit-image's sample images; `./scripts/sample-images.sh` fetches them).

mod common;

use common::run::{error_code, error_message, harness, require_models, samples, store};
use mediaflow_store::{RunStatus, StepStatus};
use mediaflow_tests::Db;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_are_scored_and_bad_input_fails_only_its_own_step() {
    require_models(&["open-nsfw", "minilm-l3"]);
    let (h, _sup) = harness(Db::Sqlite).await;
    let dir = samples();
    let mut photos = Vec::new();
    for name in [
        "astronaut.png",
        "chelsea.png",
        "camera.png",
        "logo.png",
        "rocket.jpg",
    ] {
        photos.push(store(&h, &dir.join(name)).await);
    }
    let corrupt = h.dir.path().join("corrupt.jpg");
    let mut bytes = std::fs::read(dir.join("rocket.jpg")).unwrap();
    bytes.truncate(600);
    bytes.extend(std::iter::repeat_n(0x5a, 2000));
    std::fs::write(&corrupt, &bytes).unwrap();
    let empty = h.dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let flow = r#"
inputs:
  photos: list
  corrupt: file
  empty: file
steps:
  score:
    uses: image.classify
    for_each: ${{ inputs.photos }}
    with: { image: "${{ item }}", model: open-nsfw, flag: { nsfw: 0.8 } }
  corrupt:
    uses: image.classify
    with: { image: "${{ inputs.corrupt }}", model: open-nsfw }
  empty:
    uses: image.classify
    with: { image: "${{ inputs.empty }}", model: open-nsfw }
  wrong_model:
    uses: image.classify
    with: { image: "${{ inputs.corrupt }}", model: minilm-l3, preprocess: { resize: { width: 224, height: 224 } } }
  wrong_shape:
    uses: image.classify
    with: { image: "${{ inputs.corrupt }}", model: open-nsfw, preprocess: { resize: { width: 224, height: 224 }, layout: nchw } }
"#;
    let inputs = json!({
        "photos": photos,
        "corrupt": store(&h, &corrupt).await,
        "empty": store(&h, &empty).await,
    });
    let r = h.run(flow, inputs).await;
    assert_eq!(r.status, RunStatus::Failed, "four steps fail");
    let score = &r.steps["score"];
    assert_eq!(score.status, StepStatus::Succeeded, "{score:?}");
    let outputs = score.outputs.as_array().unwrap();
    assert_eq!(outputs.len(), 5);
    for o in outputs {
        let nsfw = o["scores"]["nsfw"].as_f64().unwrap();
        let sfw = o["scores"]["sfw"].as_f64().unwrap();
        assert!((nsfw + sfw - 1.0).abs() < 1e-4, "{o}");
        assert!(nsfw < 0.8, "none of these photos is NSFW: {o}");
        assert_eq!(o["flagged"], false);
        assert_eq!(o["label"], "sfw");
        println!("{}: nsfw {nsfw:.4}", o["name"]);
    }
    assert_eq!(outputs[0]["name"], "astronaut.png");
    assert_eq!(
        (outputs[2]["width"].as_u64(), outputs[2]["height"].as_u64()),
        (Some(512), Some(512))
    );

    assert_eq!(error_code(&r, "corrupt"), "bad_image");
    assert!(
        error_message(&r, "corrupt").starts_with("corrupt.jpg is not an image"),
        "{}",
        error_message(&r, "corrupt")
    );
    assert_eq!(error_code(&r, "empty"), "bad_image");
    assert_eq!(error_message(&r, "empty"), "empty.png is empty (0 bytes)");
    assert_eq!(error_code(&r, "wrong_model"), "wrong_model");
    let m = error_message(&r, "wrong_model");
    assert!(
        m.contains("paraphrase-MiniLM-L3-v2.onnx") && m.contains("it has 2 inputs"),
        "{m}"
    );
    assert_eq!(error_code(&r, "wrong_shape"), "wrong_model");
    let m = error_message(&r, "wrong_shape");
    assert!(
        m.contains("open_nsfw.onnx: its input `input_0` is")
            && m.contains("dimension 1 is 224, not 3"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_sentiment_and_topics_on_real_text() {
    require_models(&["minilm-l6", "minilm-l3"]);
    let (h, sup) = harness(Db::Sqlite).await;
    let latin1 = h.dir.path().join("latin1.txt");
    std::fs::write(&latin1, b"Caf\xe9 owners say prices are too high").unwrap();
    let long: String = std::iter::repeat_n(
        "The council met on Tuesday to discuss the bridge, the budget and the new library. ",
        40,
    )
    .collect();
    let flow = r#"
inputs:
  latin1: file
  long: string
steps:
  embed:
    uses: text.embed
    for_each:
      - "The council approved a new bridge across the river."
      - "Councillors voted for a river crossing to be built."
      - "The striker scored twice in the cup final."
    with: { text: "${{ item }}" }
  l3:
    uses: text.embed
    with: { text: "The council approved a new bridge across the river.", model: minilm-l3 }
  long:
    uses: text.embed
    with: { text: "${{ inputs.long }}" }
  mood:
    uses: text.sentiment
    for_each:
      - "An absolutely wonderful film, moving and beautifully acted."
      - "A dull, clumsy mess. I wanted my money back."
    with: { text: "${{ item }}" }
  topic:
    uses: text.classify
    with:
      text: "The striker scored twice and the team won the league."
      labels: { sport: "football, match, team, goal, league", business: "markets, shares, economy, prices" }
  empty:
    uses: text.embed
    with: { text: "   " }
  not_utf8:
    uses: text.sentiment
    with: { text: "${{ inputs.latin1 }}" }
"#;
    let r = h
        .run(
            flow,
            json!({ "latin1": store(&h, &latin1).await, "long": long }),
        )
        .await;
    let v: Vec<Vec<f64>> = r.steps["embed"]
        .outputs
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            assert_eq!(o["dims"], 384);
            assert_eq!(o["model"], "minilm-l6");
            o["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    assert!((dot(&v[0], &v[0]) - 1.0).abs() < 1e-4, "unit length");
    let (same, other) = (dot(&v[0], &v[1]), dot(&v[0], &v[2]));
    println!("cosine: paraphrase {same:.3}, other topic {other:.3}");
    assert!(same > 0.6 && other < 0.3, "{same} {other}");
    assert_eq!(r.steps["l3"].outputs["dims"], 384);
    let long = &r.steps["long"].outputs;
    // 686 tokens in windows of 254 (+ [CLS] and [SEP]): chunked, not truncated.
    assert_eq!(long["windows"], 3, "{}", long["tokens"]);
    assert!(long["tokens"].as_u64().unwrap() > 600);

    let mood = r.steps["mood"].outputs.as_array().unwrap();
    assert_eq!(mood[0]["label"], "positive", "{}", mood[0]);
    assert_eq!(mood[1]["label"], "negative", "{}", mood[1]);
    assert!(mood[0]["compound"].as_f64().unwrap() > 0.5);
    assert!(mood[1]["compound"].as_f64().unwrap() < -0.5);

    assert_eq!(r.steps["topic"].outputs["label"], "sport");
    assert_eq!(r.steps["topic"].outputs["tags"][0], "sport");

    assert_eq!(error_code(&r, "empty"), "empty_text");
    assert_eq!(error_code(&r, "not_utf8"), "bad_text");
    assert_eq!(
        error_message(&r, "not_utf8"),
        "latin1.txt is not UTF-8 text (invalid byte at offset 3)"
    );
    drop(sup);
}

//! `workflows/podcast-to-article.yaml` end to end: espeak-ng speech → whisper tiny.en
//! (mediaflow-asr) → Qwen2.5-Coder-0.5B headline and summary (mediaflow-llm) → article and SRT files.
//! Needs both plugin binaries (`cargo test --workspace` builds them) and both models
//! (`./scripts/test.sh` pulls them).

mod common;

use std::path::Path;

use common::*;
use mediaflow_store::RunStatus;
use mediaflow_tests::{Db, Harness};
use serde_json::json;

const WORKFLOW: &str = "workflows/podcast-to-article.yaml";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podcast_to_article_runs_on_real_models() {
    require_model(MODEL);
    require_model("qwen2.5-coder-0.5b-instruct");
    let asr = Path::new(env!("CARGO_BIN_EXE_mediaflow-asr"));
    let llm = asr.with_file_name("mediaflow-llm");
    assert!(
        llm.is_file(),
        "{} is missing: build it first (`cargo build -p mediaflow-llm`, or run the whole suite with `cargo test --workspace`)",
        llm.display()
    );
    let mut h = Harness::new(Db::Sqlite).await;
    let asr_sup = register(&mut h, asr, &models_dir()).await;
    let llm_sup = register(&mut h, &llm, &models_dir()).await;

    let wav = h.dir.path().join("episode.wav");
    speak(SPEECH, &wav);
    let audio = store(&h, &[wav]).await.remove(0);
    let out_dir = h.dir.path().join("out");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let yaml = std::fs::read_to_string(root.join(WORKFLOW)).unwrap();
    let plan = match mediaflow_workflow::compile_str(WORKFLOW, &yaml, &h.registry) {
        Ok(p) => std::sync::Arc::new(p),
        Err(d) => panic!("{}", d.render(false)),
    };
    let inputs = json!({
        "audio": audio,
        "asr_model": MODEL,
        "out_dir": out_dir.display().to_string(),
    });
    let r = h
        .engine(Default::default())
        .run(
            plan,
            inputs.as_object().unwrap().clone(),
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    let o = &r.outputs;
    assert_eq!(o["language"], "en");
    assert!(o["headline"].as_str().unwrap().len() >= 10, "{o}");
    assert!(o["summary"].as_str().unwrap().len() >= 20, "{o}");
    let transcript = r.steps["transcribe"].outputs["text"].as_str().unwrap();
    assert!(wer(SPEECH, transcript) <= 0.15, "{transcript}");

    let article = std::fs::read_to_string(out_dir.join("article.md")).unwrap();
    assert!(article.starts_with(&format!("# {}", o["headline"].as_str().unwrap())));
    assert!(article.contains(&format!("## Transcript\n\n{transcript}")));
    let srt = std::fs::read_to_string(out_dir.join("subtitles.srt")).unwrap();
    let cues = cues(&srt, false);
    assert!(!cues.is_empty());
    assert!(cues.windows(2).all(|w| w[0].1 <= w[1].0), "{cues:?}");
    assert_eq!(
        o["srt"],
        out_dir.join("subtitles.srt").display().to_string()
    );

    asr_sup.shutdown().await;
    llm_sup.shutdown().await;
    h.cleanup().await;
}

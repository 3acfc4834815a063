//! `audio.transcribe` on real speech (espeak-ng) and the real whisper tiny.en model, through
//! the plugin process and the engine. `./scripts/test.sh` installs espeak-ng, sox and lame
//! and pulls the model (`mediaflow models pull whisper-tiny.en`).

mod common;

use std::path::PathBuf;

use common::*;
use mediaflow_plugin_api::ArtifactRef;
use mediaflow_store::{RunStatus, StepStatus};
use mediaflow_tests::Db;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_in_seven_formats_is_transcribed_with_subtitles() {
    require_model(MODEL);
    let (h, sup) = asr_harness(Db::Sqlite, &models_dir()).await;
    let wav = h.dir.path().join("speech.wav");
    speak(SPEECH, &wav);
    let clips = formats(&wav, h.dir.path());
    let refs = store(&h, &clips).await;
    let flow = format!(
        r#"
inputs:
  clips: list
steps:
  asr:
    uses: audio.transcribe
    for_each: ${{{{ inputs.clips }}}}
    with: {{ audio: "${{{{ item }}}}", model: {MODEL} }}
"#
    );
    let r = h.run(&flow, json!({ "clips": refs })).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    let outputs = r.steps["asr"].outputs.as_array().unwrap();
    assert_eq!(outputs.len(), clips.len());
    let durations: Vec<f64> = outputs
        .iter()
        .map(|o| o["duration"].as_f64().unwrap())
        .collect();
    for (clip, o) in clips.iter().zip(outputs) {
        let name = clip.file_name().unwrap().to_string_lossy();
        let text = o["text"].as_str().unwrap();
        let rate = wer(SPEECH, text);
        println!("{name}: WER {:.1}% — {text}", rate * 100.0);
        assert!(rate <= 0.15, "{name}: WER {rate:.3}: {text:?}");
        assert_eq!(o["language"], "en", "{name}");
        let duration = o["duration"].as_f64().unwrap();
        assert!(
            (duration - durations[0]).abs() < 0.2 && duration > 5.0,
            "{name}: {duration} s"
        );

        let segments = o["segments"].as_array().unwrap();
        assert!(!segments.is_empty());
        let mut last_end = 0.0;
        for s in segments {
            let (a, b) = (s["start"].as_f64().unwrap(), s["end"].as_f64().unwrap());
            assert!(a >= last_end && b > a && b <= duration + 1.0, "{name}: {s}");
            last_end = b;
        }

        for (key, vtt, media) in [
            ("srt", false, "application/x-subrip"),
            ("vtt", true, "text/vtt"),
        ] {
            let artifact = ArtifactRef::from_value(&o[key]).expect("an artifact");
            assert_eq!(artifact.media_type, media);
            assert_eq!(
                artifact.name.as_deref(),
                Some(format!("{}.{key}", clip.file_stem().unwrap().to_string_lossy()).as_str())
            );
            let path = h.artifacts.locate(&artifact).await.unwrap();
            let cues = cues(&std::fs::read_to_string(path).unwrap(), vtt);
            assert!(!cues.is_empty(), "{name} {key}");
            let mut last = 0.0;
            for (a, b, _) in &cues {
                assert!(*a >= last && b > a, "{name} {key}: times go back: {cues:?}");
                last = *b;
            }
            let joined: Vec<&str> = cues.iter().map(|c| c.2.as_str()).collect();
            assert_eq!(
                joined.join(" ").split_whitespace().collect::<Vec<_>>(),
                text.split_whitespace().collect::<Vec<_>>(),
                "{name} {key}: the cues hold the transcript"
            );
        }
    }
    assert_eq!(sup.starts(), 1);
    sup.shutdown().await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_and_empty_audio_fail_their_step_only() {
    require_model(MODEL);
    let (h, sup) = asr_harness(Db::Postgres, &models_dir()).await;
    let dir = h.dir.path();
    let wav = dir.join("speech.wav");
    speak("Good evening, here is the news.", &wav);
    let flac = formats(&wav, dir).remove(0);

    let empty = dir.join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    let text = dir.join("notes.mp3");
    std::fs::write(
        &text,
        "These are my notes, saved with the wrong name.\n".repeat(50),
    )
    .unwrap();
    // A FLAC whose frames are damaged after the first few: sync codes survive, checksums
    // do not.
    let mut bytes = std::fs::read(&flac).unwrap();
    let start = bytes.len() / 8;
    for i in (start..bytes.len()).step_by(97) {
        bytes[i] ^= 0x5a;
    }
    let damaged = dir.join("damaged.flac");
    std::fs::write(&damaged, bytes).unwrap();
    let files: Vec<PathBuf> = vec![empty, text, damaged, wav];
    let refs = store(&h, &files).await;
    let flow = format!(
        r#"
inputs: {{ empty: file, text: file, damaged: file, good: file }}
steps:
  empty: {{ uses: audio.transcribe, with: {{ audio: "${{{{ inputs.empty }}}}", model: {MODEL} }} }}
  text: {{ uses: audio.transcribe, with: {{ audio: "${{{{ inputs.text }}}}", model: {MODEL} }} }}
  damaged: {{ uses: audio.transcribe, with: {{ audio: "${{{{ inputs.damaged }}}}", model: {MODEL} }} }}
  good: {{ uses: audio.transcribe, with: {{ audio: "${{{{ inputs.good }}}}", model: {MODEL}, beam_size: 1 }} }}
  long: {{ uses: audio.transcribe, with: {{ audio: "${{{{ inputs.good }}}}", model: {MODEL}, max_duration: 1s }} }}
"#
    );
    let inputs = json!({"empty": refs[0], "text": refs[1], "damaged": refs[2], "good": refs[3]});
    let r = h.run(&flow, inputs).await;
    assert_eq!(r.status, RunStatus::Failed);
    let expect = [
        (
            "empty",
            &["empty_audio"][..],
            "empty.wav (artifact e3b0c44298fc) is empty",
        ),
        (
            "text",
            &["unsupported_audio", "corrupt_audio"][..],
            "notes.mp3",
        ),
        ("damaged", &["corrupt_audio"][..], "damaged.flac (artifact"),
        // The speech lasts about two seconds: over a `max_duration` of 1 s.
        (
            "long",
            &["too_long"][..],
            "long, over the step's `max_duration` of 1s",
        ),
    ];
    for (step, codes, words) in expect {
        let s = &r.steps[step];
        assert_eq!(s.status, StepStatus::Failed, "{step}");
        let e: &Value = s.error.as_ref().unwrap();
        assert!(codes.contains(&e["code"].as_str().unwrap()), "{step}: {e}");
        assert!(
            e["message"].as_str().unwrap().contains(words),
            "{step}: {e}"
        );
        assert_eq!(s.attempts, 1, "{step}: bad input is not retried");
    }
    let good = &r.steps["good"];
    assert_eq!(good.status, StepStatus::Succeeded, "{good:?}");
    let heard = good.outputs["text"].as_str().unwrap();
    assert!(
        wer("Good evening, here is the news.", heard) <= 0.2,
        "{heard}"
    );
    assert_eq!(sup.starts(), 1, "the plugin process survived the bad files");
    sup.shutdown().await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_garbage_and_truncated_models_are_named() {
    require_model(MODEL);
    let empty_models = tempfile::tempdir().unwrap();
    let (h, sup) = asr_harness(Db::Sqlite, empty_models.path()).await;
    let dir = h.dir.path();
    let wav = dir.join("speech.wav");
    speak("Hello.", &wav);
    let audio = store(&h, &[wav]).await.remove(0);
    let real = mediaflow_models::ModelStore::open(models_dir())
        .unwrap()
        .resolve(MODEL)
        .unwrap();
    let bytes = std::fs::read(&real).unwrap();
    let truncated = dir.join("truncated.bin");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 5]).unwrap();
    let garbage = dir.join("garbage.bin");
    std::fs::write(&garbage, b"GGUF this is a language model, not whisper").unwrap();
    let flow = format!(
        r#"
inputs: {{ audio: file }}
steps:
  missing: {{ uses: audio.transcribe, with: {{ audio: "${{{{ inputs.audio }}}}", model: {MODEL} }} }}
  garbage: {{ uses: audio.transcribe, with: {{ audio: "${{{{ inputs.audio }}}}", model: "{}" }} }}
  truncated: {{ uses: audio.transcribe, with: {{ audio: "${{{{ inputs.audio }}}}", model: "{}" }} }}
  real: {{ uses: audio.transcribe, with: {{ audio: "${{{{ inputs.audio }}}}", model: "{}", beam_size: 1, audio_ctx: 256 }} }}
"#,
        garbage.display(),
        truncated.display(),
        real.display()
    );
    let r = h.run(&flow, json!({ "audio": audio })).await;
    let error = |step: &str| r.steps[step].error.clone().unwrap_or_default();
    assert_eq!(error("missing")["code"], "model_not_installed");
    assert!(
        error("missing")["help"]
            .as_str()
            .unwrap()
            .contains("mediaflow models pull whisper-tiny.en"),
        "{}",
        error("missing")
    );
    assert_eq!(
        error("garbage")["code"],
        "bad_model",
        "{}",
        error("garbage")
    );
    assert!(error("garbage")["message"]
        .as_str()
        .unwrap()
        .contains("is not a whisper.cpp model"));
    assert_eq!(error("truncated")["code"], "bad_model");
    assert!(
        error("truncated")["message"]
            .as_str()
            .unwrap()
            .contains("truncated"),
        "{}",
        error("truncated")
    );
    assert_eq!(r.steps["real"].status, StepStatus::Succeeded, "{r:?}");
    assert!(wer("Hello.", r.steps["real"].outputs["text"].as_str().unwrap()) == 0.0);
    assert_eq!(sup.starts(), 1);
    sup.shutdown().await;
    h.cleanup().await;
}

#[test]
fn bad_settings_are_compile_errors() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (h, sup) = asr_harness(Db::Sqlite, &models_dir()).await;
        let compile = |with: &str| {
            let flow = format!(
                "inputs: {{ audio: file }}\nsteps:\n  a:\n    uses: audio.transcribe\n    with: {{ audio: \"${{{{ inputs.audio }}}}\", {with} }}\n"
            );
            match mediaflow_workflow::compile_str("bad.yaml", &flow, &h.registry) {
                Ok(_) => panic!("compiles: {with}"),
                Err(d) => d.render(false),
            }
        };
        let err = compile("beam_size: 40");
        assert!(err.contains("40 is greater than the maximum of"), "{err}");
        assert!(err.contains("bad.yaml:5:"), "{err}");
        let err = compile("language: klingon");
        assert!(err.contains("\"klingon\" is not one of"), "{err}");
        assert!(err.contains("bad.yaml:5:"), "{err}");
        // A check only the plugin process can make, asked of it while compiling.
        let err = compile("model: whisper-tiny.en, translate: true");
        assert!(err.contains("English-only models cannot"), "{err}");
        assert!(err.contains("bad.yaml:5:"), "{err}");
        let err = compile("max_duration: forever");
        assert!(err.contains("`forever` is not a duration"), "{err}");
        sup.shutdown().await;
        h.cleanup().await;
    });
}

//! Word timestamps, voice activity detection and subtitle cues on real speech (espeak-ng)
//! and the real tiny.en and Silero VAD models, through the plugin process.
//! `./scripts/test.sh` pulls both (`whisper-tiny.en`, `silero-vad`).

mod common;

use std::path::PathBuf;

use common::*;
use mediaflow_store::{RunStatus, StepStatus};
use mediaflow_tests::Db;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subtitles_keep_to_broadcast_limits_and_hold_the_transcript() {
    require_model(MODEL);
    let (h, sup) = asr_harness(Db::Sqlite, &models_dir()).await;
    // The espeak-ng set at two reading speeds, and the README's own bulletin as
    // run-example.sh speaks it.
    let mut clips: Vec<PathBuf> = Vec::new();
    for (i, (text, wpm)) in [(SPEECH, 135), (SPEECH, 170), (README_BULLETIN, 150)]
        .iter()
        .enumerate()
    {
        let wav = h.dir.path().join(format!("clip-{i}.wav"));
        speak_at(text, *wpm, &wav);
        clips.push(wav);
    }
    let refs = store(&h, &clips).await;
    let flow = format!(
        r#"
inputs: {{ clips: list }}
steps:
  asr:
    uses: audio.transcribe
    for_each: ${{{{ inputs.clips }}}}
    with: {{ audio: "${{{{ item }}}}", model: {MODEL}, word_timestamps: true, vad: false }}
"#
    );
    let r = h.run(&flow, json!({ "clips": refs })).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    for (clip, o) in clips.iter().zip(r.steps["asr"].outputs.as_array().unwrap()) {
        let name = clip.file_name().unwrap().to_string_lossy();
        let text = o["text"].as_str().unwrap();
        let srt_ref = mediaflow_plugin_api::ArtifactRef::from_value(&o["srt"]).unwrap();
        let srt = std::fs::read_to_string(h.artifacts.locate(&srt_ref).await.unwrap()).unwrap();
        println!("{name}:\n{srt}");
        let problems = broadcast_problems(&srt);
        assert!(problems.is_empty(), "{name}:\n{}", problems.join("\n"));
        let cue_text: Vec<String> = cues(&srt, false).into_iter().map(|c| c.2).collect();
        let joined = cue_text.join(" ");
        assert_eq!(
            joined.split_whitespace().collect::<Vec<_>>(),
            text.split_whitespace().collect::<Vec<_>>(),
            "{name}: the cues hold exactly the transcript"
        );
        check_words(&name, o);
    }
    sup.shutdown().await;
    h.cleanup().await;
}

/// `words` are in order, each inside its segment, and spell the transcript.
fn check_words(name: &str, o: &Value) {
    let words = o["words"]
        .as_array()
        .expect("words with word_timestamps: true");
    let segments = o["segments"].as_array().unwrap();
    assert!(!words.is_empty(), "{name}");
    let mut last = 0.0;
    let mut k = 0;
    for w in words {
        let (a, b) = (w["start"].as_f64().unwrap(), w["end"].as_f64().unwrap());
        let p = w["probability"].as_f64().unwrap();
        assert!(a >= last - 1e-9 && b >= a, "{name}: out of order at {w}");
        assert!((0.0..=1.0).contains(&p), "{name}: {w}");
        last = b;
        // The segment that holds it.
        while k < segments.len() && segments[k]["end"].as_f64().unwrap() < a - 1e-9 {
            k += 1;
        }
        let s = segments
            .get(k)
            .unwrap_or_else(|| panic!("{name}: {w} after every segment"));
        let (sa, sb) = (s["start"].as_f64().unwrap(), s["end"].as_f64().unwrap());
        assert!(
            a >= sa - 1e-9 && b <= sb + 1e-9,
            "{name}: {w} outside its segment {s}"
        );
    }
    let spelled: Vec<&str> = words.iter().map(|w| w["word"].as_str().unwrap()).collect();
    assert_eq!(
        spelled.join(" ").split_whitespace().collect::<Vec<_>>(),
        o["text"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        "{name}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vad_keeps_every_word_and_drops_silence_and_music() {
    require_model(MODEL);
    require_model("silero-vad");
    let (h, sup) = asr_harness(Db::Postgres, &models_dir()).await;
    let dir = h.dir.path();
    // 9 s of silence, the first sentence, 12 s of music (chords and noise), the rest, 8 s
    // of silence: over 30 s, so VAD is on by default.
    let (first, rest) = SPEECH.split_once(". ").unwrap();
    let first = format!("{first}.");
    let parts = [
        ("silence", None),
        ("first", Some(first.as_str())),
        ("music", None),
        ("rest", Some(rest)),
        ("tail", None),
    ];
    let mut files = Vec::new();
    let mut spans = Vec::new();
    let mut t = 0.0;
    for (name, text) in parts {
        let out = dir.join(format!("{name}.wav"));
        match (name, text) {
            (_, Some(text)) => {
                let raw = dir.join(format!("{name}-raw.wav"));
                speak(text, &raw);
                to_16k(&raw, &out);
            }
            ("music", None) => music(&out, 12.0, [220, 277, 330]),
            _ => silence(&out, if name == "silence" { 9.0 } else { 8.0 }),
        }
        let d = seconds_of_16k(&out);
        if text.is_some() {
            spans.push((t, t + d));
        }
        t += d;
        files.push(out);
    }
    let whole = dir.join("programme.wav");
    concat(&files, &whole);
    let audio = store(&h, &[whole]).await.remove(0);

    let garbage = dir.join("vad-garbage.bin");
    std::fs::write(&garbage, b"lmgg\x0a\x00\x00\x00silero-16k and then nothing").unwrap();
    let flow = format!(
        r#"
inputs: {{ audio: file }}
steps:
  vad:
    uses: audio.transcribe
    with: {{ audio: "${{{{ inputs.audio }}}}", model: {MODEL}, word_timestamps: true }}
  whole:
    uses: audio.transcribe
    with: {{ audio: "${{{{ inputs.audio }}}}", model: {MODEL}, vad: false }}
  corrupt_vad:
    uses: audio.transcribe
    with: {{ audio: "${{{{ inputs.audio }}}}", model: {MODEL}, vad: true, vad_model: "{}" }}
"#,
        garbage.display()
    );
    let r = h.run(&flow, json!({ "audio": audio })).await;
    let vad = &r.steps["vad"];
    assert_eq!(vad.status, StepStatus::Succeeded, "{r:?}");
    let o = &vad.outputs;
    let text = o["text"].as_str().unwrap();
    println!(
        "with VAD: {text}\nwithout: {}",
        r.steps["whole"].outputs["text"]
    );
    assert!(wer(SPEECH, text) <= 0.1, "VAD lost words: {text:?}");
    // Silence and music are not transcribed: what VAD kept is little more than the speech.
    let speech: f64 = spans.iter().map(|(a, b)| b - a).sum();
    let kept = o["speech_duration"]
        .as_f64()
        .expect("speech_duration with VAD");
    let total = o["duration"].as_f64().unwrap();
    println!("speech {speech:.1} s, VAD kept {kept:.1} s of {total:.1} s; spans {spans:?}");
    assert!(
        kept < speech + 4.0 && kept > speech * 0.8,
        "{kept} s kept for {speech} s of speech"
    );
    // Every segment (in the file's own time) lies inside a spoken span, give or take the
    // VAD's padding and espeak-ng's own lead-in.
    for s in o["segments"].as_array().unwrap() {
        let (a, b) = (s["start"].as_f64().unwrap(), s["end"].as_f64().unwrap());
        assert!(
            spans.iter().any(|(x, y)| a >= x - 0.6 && b <= y + 0.6),
            "segment {s} is outside the speech {spans:?}"
        );
    }
    check_words("vad", o);
    // Without VAD the whole file is the input.
    assert!(r.steps["whole"]
        .outputs
        .get("speech_duration")
        .is_none_or(Value::is_null));

    let e = r.steps["corrupt_vad"].error.clone().unwrap_or_default();
    assert_eq!(e["code"], "bad_model", "{e}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("vad-garbage.bin") && message.contains("VAD model"),
        "{e}"
    );
    assert_eq!(
        sup.starts(),
        1,
        "the plugin process survived the bad VAD model"
    );
    sup.shutdown().await;
    h.cleanup().await;
}

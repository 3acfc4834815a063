//! Word times against ground truth. Two sentences are spoken a word at a time (espeak-ng),
//! each word trimmed to its sound and laid down at a known onset, with the short gaps of
//! running speech between words and a pause between the sentences, so every word's true
//! start and end are known to the sample. They are transcribed through the plugin process
//! with DTW alignment (the default for `word_timestamps: true`) and with timestamp tokens,
//! on tiny.en.

mod common;

use common::*;
use mediaflow_store::{RunStatus, StepStatus};
use mediaflow_tests::Db;
use serde_json::{json, Value};

const SENTENCES: &str = "Ministers will publish the housing report on Thursday morning after \
a long delay caused by the election. The opposition called the delay a scandal and demanded \
answers from the minister today.";

/// The gap after each word, seconds (cycled); after a sentence, [`PAUSE`].
const GAPS: [f64; 5] = [0.03, 0.06, 0.02, 0.1, 0.04];
const PAUSE: f64 = 0.7;

/// Errors (seconds) of the words of `o` that match the reference words (by longest common
/// subsequence): (start errors, end errors), and how many reference words were matched.
fn errors(reference: &[(String, f64, f64)], o: &Value) -> (Vec<f64>, Vec<f64>, usize) {
    let hyp: Vec<(String, f64, f64)> = o["words"]
        .as_array()
        .expect("words")
        .iter()
        .filter_map(|w| {
            let word = words(w["word"].as_str()?).join("");
            Some((word, w["start"].as_f64()?, w["end"].as_f64()?))
        })
        .collect();
    let (n, m) = (reference.len(), hyp.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if reference[i].0 == hyp[j].0 {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let (mut starts, mut ends) = (Vec::new(), Vec::new());
    while i < n && j < m {
        if reference[i].0 == hyp[j].0 {
            starts.push((hyp[j].1 - reference[i].1).abs());
            ends.push((hyp[j].2 - reference[i].2).abs());
            (i, j) = (i + 1, j + 1);
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    let matched = starts.len();
    (starts, ends, matched)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtw_word_times_land_on_the_spoken_words() {
    require_model(MODEL);
    let (h, sup) = asr_harness(Db::Sqlite, &models_dir()).await;
    let dir = h.dir.path();
    let lead = dir.join("lead.wav");
    silence(&lead, 1.2);
    let mut files = vec![lead.clone()];
    let mut truth = Vec::new();
    let mut t = seconds_of_16k(&lead);
    for (i, word) in SENTENCES.split_whitespace().enumerate() {
        let raw = dir.join(format!("w{i}-raw.wav"));
        let out = dir.join(format!("w{i}.wav"));
        speak_at(word, 150, &raw);
        // 16 kHz mono, the silence espeak-ng puts before and after the word trimmed off.
        let (raw_s, out_s) = (raw.display().to_string(), out.display().to_string());
        sox(&[
            &raw_s, "-r", "16000", "-c", "1", "-b", "16", &out_s, "silence", "1", "0.01", "0.5%",
            "reverse", "silence", "1", "0.01", "0.5%", "reverse",
        ]);
        let d = seconds_of_16k(&out);
        truth.push((words(word).join(""), t, t + d));
        t += d;
        files.push(out);
        let pause = dir.join(format!("p{i}.wav"));
        let gap = if word.ends_with('.') {
            PAUSE
        } else {
            GAPS[i % GAPS.len()]
        };
        silence(&pause, gap);
        t += seconds_of_16k(&pause);
        files.push(pause);
    }
    let whole = dir.join("spaced.wav");
    concat(&files, &whole);
    let audio = store(&h, &[whole]).await.remove(0);

    let flow = format!(
        r#"
inputs: {{ audio: file }}
steps:
  dtw:
    uses: audio.transcribe
    with: {{ audio: "${{{{ inputs.audio }}}}", model: {MODEL}, word_timestamps: true }}
  tokens:
    uses: audio.transcribe
    with: {{ audio: "${{{{ inputs.audio }}}}", model: {MODEL}, word_timestamps: true, word_alignment: tokens }}
  small_context:
    uses: audio.transcribe
    with: {{ audio: "${{{{ inputs.audio }}}}", model: {MODEL}, word_timestamps: true, audio_ctx: 200 }}
"#
    );
    let r = h.run(&flow, json!({ "audio": audio })).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    let mut figures = Vec::new();
    for step in ["dtw", "tokens"] {
        let s = &r.steps[step];
        assert_eq!(s.status, StepStatus::Succeeded, "{step}: {s:?}");
        let (starts, ends, matched) = errors(&truth, &s.outputs);
        println!(
            "{step}: {} of {} words matched; start error median {:.3} s, mean {:.3} s, max {:.3} s; \
             end error median {:.3} s, mean {:.3} s\n  {}",
            matched,
            truth.len(),
            median(&starts),
            mean(&starts),
            starts.iter().cloned().fold(0.0, f64::max),
            median(&ends),
            mean(&ends),
            s.outputs["text"]
        );
        assert!(
            matched * 10 >= truth.len() * 8,
            "{step}: only {matched} of {} words recognised",
            truth.len()
        );
        figures.push((median(&starts), mean(&starts), mean(&ends)));
    }
    // whisper.cpp aborts when DTW aligns a chunk longer than the encoder context (4 s
    // here, for 18 s of audio): the step widens the context to the clip instead.
    let small = &r.steps["small_context"];
    assert_eq!(small.status, StepStatus::Succeeded, "{small:?}");
    let (_, _, matched) = errors(&truth, &small.outputs);
    assert!(matched * 10 >= truth.len() * 8, "{}", small.outputs["text"]);
    let (dtw, tokens) = (figures[0], figures[1]);
    // Measured on tiny.en (README, *Word timestamps*): DTW's start error median 0.12 s and
    // mean 0.14 s, end error mean 0.18 s; timestamp tokens 0.19, 0.25 and 0.27 s.
    assert!(dtw.0 <= 0.2, "DTW start error median {:.3} s", dtw.0);
    assert!(dtw.1 <= 0.2, "DTW start error mean {:.3} s", dtw.1);
    assert!(
        dtw.1 < tokens.1 && dtw.2 < tokens.2,
        "DTW (starts {:.3} s, ends {:.3} s off on average) should be closer to the truth \
         than timestamp tokens ({:.3} s, {:.3} s)",
        dtw.1,
        dtw.2,
        tokens.1,
        tokens.2
    );
    sup.shutdown().await;
    h.cleanup().await;
}

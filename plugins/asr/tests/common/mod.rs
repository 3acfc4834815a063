//! Shared by the asr tests: real speech from espeak-ng in many formats, the model check,
//! word error rate, and a harness with the `mediaflow-asr` process registered.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use mediaflow_plugin_api::ArtifactRef;
use mediaflow_process_host::{describe, Supervisor};
use mediaflow_tests::{Db, Harness};

pub const MODEL: &str = "whisper-tiny.en";

/// Three news sentences, read by espeak-ng. Words only: no digits, no spellings that
/// differ between British and American English.
pub const SPEECH: &str = "The city council approved a new bridge across the river on \
Tuesday night. Critics said the money should have been spent on flood protection instead. \
Work on the project is expected to start in the autumn.";

/// The models the plugin process would use: the one place that decides is
/// [`mediaflow_models::ModelStore::env_dir`].
pub fn models_dir() -> PathBuf {
    mediaflow_models::ModelStore::env_dir()
}

pub fn require_model(name: &str) {
    let store = mediaflow_models::ModelStore::open(models_dir()).unwrap();
    if let Err(e) = store.resolve(name) {
        panic!(
            "{e}: {} (or run ./scripts/test.sh, which pulls it)",
            e.help().unwrap_or_default()
        );
    }
}

fn run(cmd: &mut Command) {
    let shown = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {shown}: {e}; install espeak-ng, sox, libsox-fmt-all and lame (./scripts/test.sh does)")
    });
    assert!(
        out.status.success(),
        "{shown} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// espeak-ng's reading of `text` (American English, 135 words a minute) as a 22.05 kHz
/// mono WAV.
pub fn speak(text: &str, out: &Path) {
    run(Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "135", "-w"])
        .arg(out)
        .arg(text));
}

/// The clip in other containers, codecs, sample rates and channel counts.
pub fn formats(wav: &Path, dir: &Path) -> Vec<PathBuf> {
    let sox = |name: &str, args: &[&str]| {
        let out = dir.join(name);
        run(Command::new("sox").arg(wav).args(args).arg(&out));
        out
    };
    let mp3 = dir.join("speech-64k.mp3");
    run(Command::new("lame")
        .args(["--quiet", "-b", "64"])
        .arg(wav)
        .arg(&mp3));
    vec![
        sox("speech-44k-stereo.flac", &["-r", "44100", "-c", "2"]),
        sox("speech-8k.wav", &["-r", "8000"]),
        mp3,
        sox("speech-48k.ogg", &["-r", "48000", "-C", "3"]),
        sox(
            "speech-24k-float.wav",
            &["-r", "24000", "-e", "floating-point", "-b", "32"],
        ),
        sox("speech-24bit.aiff", &["-b", "24"]),
        sox(
            "speech-48k-s32-stereo.wav",
            &["-r", "48000", "-c", "2", "-b", "32", "-e", "signed-integer"],
        ),
    ]
}

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| c.is_whitespace() || c == '-')
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word error rate of `hypothesis` against `reference`, case and punctuation ignored.
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let (r, h) = (words(reference), words(hypothesis));
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            let sub = prev[j] + usize::from(rw != hw);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len().max(1) as f64
}

/// A harness with `audio.transcribe` from the real plugin process.
pub async fn asr_harness(db: Db, models: &Path) -> (Harness, Arc<Supervisor>) {
    let mut h = Harness::new(db).await;
    let sup = register(
        &mut h,
        Path::new(env!("CARGO_BIN_EXE_mediaflow-asr")),
        models,
    )
    .await;
    (h, sup)
}

/// Starts the plugin binary at `exe` (on first use) and registers its plugins.
pub async fn register(h: &mut Harness, exe: &Path, models: &Path) -> Arc<Supervisor> {
    let binary = describe(exe)
        .await
        .unwrap_or_else(|e| panic!("{} describes itself: {e}", exe.display()));
    let sup = Supervisor::new(
        binary,
        vec![("MEDIAFLOW_MODELS".into(), models.display().to_string())],
    );
    h.register(sup.plugins());
    sup
}

/// Puts files into the run's artifact store, as `-i audio=PATH` does.
pub async fn store(h: &Harness, files: &[PathBuf]) -> Vec<ArtifactRef> {
    let mut out = Vec::new();
    for f in files {
        out.push(h.artifacts.store_file(f, None).await.expect("store file"));
    }
    out
}

/// The parsed cues of an SRT or WebVTT file: (start, end, text), checked for form.
pub fn cues(text: &str, vtt: bool) -> Vec<(f64, f64, String)> {
    let body = if vtt {
        text.strip_prefix("WEBVTT\n\n").expect("WEBVTT header")
    } else {
        text
    };
    let sep = if vtt { '.' } else { ',' };
    let stamp = |s: &str| -> f64 {
        let (hms, ms) = s
            .split_once(sep)
            .unwrap_or_else(|| panic!("bad time {s:?}"));
        let p: Vec<f64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
        assert_eq!(p.len(), 3, "{s:?}");
        assert_eq!(ms.len(), 3, "{s:?}");
        p[0] * 3600.0 + p[1] * 60.0 + p[2] + ms.parse::<f64>().unwrap() / 1000.0
    };
    let mut out = Vec::new();
    for (i, block) in body
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .enumerate()
    {
        let mut lines = block.lines();
        if !vtt {
            assert_eq!(lines.next(), Some((i + 1).to_string().as_str()), "{block}");
        }
        let times = lines.next().expect("time line");
        let (a, b) = times.split_once(" --> ").expect("-->");
        let text: Vec<&str> = lines.collect();
        assert!(!text.is_empty(), "cue without text: {block}");
        out.push((stamp(a), stamp(b), text.join(" ")));
    }
    out
}

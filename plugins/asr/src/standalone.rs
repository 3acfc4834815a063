//! `mediaflow-asr transcribe FILE [--model M] [--language L] [--beam-size N] [--threads N]
//! [--audio-ctx N] [--no-fallback] [--vad|--no-vad] [--words [--word-alignment dtw|tokens]]
//! [--progress] [--verbose]`: one transcription without a workflow. Prints JSON: the
//! transcript, the segments (and words), the time each phase took and the process's peak
//! memory.

use std::path::Path;
use std::time::Instant;

use clap::Parser;
use serde_json::json;

use crate::audio;
use crate::subtitles;
use crate::transcribe::{self, Models, Settings};
use crate::windows;

/// How the command calls itself in help and errors (`argv[0]` for the parser).
const COMMAND: &str = "mediaflow-asr transcribe";

/// Transcribes one audio file with whisper.cpp and prints JSON: the transcript, the
/// segments, the time each phase took and the process's peak memory.
#[derive(Debug, Parser)]
#[command(name = COMMAND, bin_name = COMMAND)]
pub struct Args {
    /// The audio file: WAV, FLAC, MP3, Ogg/Vorbis, AIFF, M4A/AAC or MP4
    pub file: String,
    /// A catalog name, a name given to `mediaflow models add`, or a path to a whisper.cpp
    /// ggml file [default: whisper-base-q8_0]
    #[arg(long, value_name = "NAME|PATH")]
    pub model: Option<String>,
    /// `auto`, or a language code such as `en`, `de`, `fr` [default: auto]
    #[arg(long, value_name = "auto|CODE")]
    pub language: Option<String>,
    /// 1 = greedy decoding (faster), more = beam search [default: 5]
    #[arg(long, value_name = "N")]
    pub beam_size: Option<u32>,
    /// CPU threads [default: all cores, at most 8]
    #[arg(long, value_name = "N")]
    pub threads: Option<u32>,
    /// Encoder context: 1500 = 30 s; smaller encodes short clips faster [default: trimmed
    /// to clips under 30 s]
    #[arg(long, value_name = "N")]
    pub audio_ctx: Option<u32>,
    /// No re-decoding at higher temperatures (faster, fully deterministic)
    #[arg(long)]
    pub no_fallback: bool,
    /// Voice activity detection on (`--vad`) or off (`--no-vad`) [default: on for audio
    /// over 30 s when `silero-vad` is installed]
    #[arg(long, overrides_with = "no_vad")]
    pub vad: bool,
    #[arg(long, hide = true)]
    pub no_vad: bool,
    /// Output `words`, each with its start, end and probability
    #[arg(long)]
    pub words: bool,
    /// How word times are found: `dtw` (alignment heads) or `tokens` [default: dtw]
    #[arg(long, value_name = "dtw|tokens", requires = "words")]
    pub word_alignment: Option<String>,
    /// Show progress on stderr as it goes (`progress 42%`)
    #[arg(long)]
    pub progress: bool,
    /// Show whisper.cpp's log and timings, and progress, on stderr
    #[arg(long)]
    pub verbose: bool,
}

impl Args {
    /// The step settings these options stand for; what they leave out takes the step's
    /// defaults.
    pub fn settings(&self) -> Result<Settings, String> {
        let options = [
            ("model", json!(self.model)),
            ("language", json!(self.language)),
            ("beam_size", json!(self.beam_size)),
            ("threads", json!(self.threads)),
            ("audio_ctx", json!(self.audio_ctx)),
            ("word_timestamps", json!(self.words)),
            ("word_alignment", json!(self.word_alignment)),
            (
                "temperature_fallback",
                json!(self.no_fallback.then_some(false)),
            ),
            (
                "vad",
                json!(if self.vad {
                    Some(true)
                } else {
                    self.no_vad.then_some(false)
                }),
            ),
        ];
        let config: serde_json::Map<String, serde_json::Value> = options
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        serde_json::from_value(config.into()).map_err(|e| format!("bad option: {e}"))
    }
}

/// Runs the command on the arguments after `transcribe`; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let argv = std::iter::once(COMMAND).chain(args.iter().map(String::as_str));
    let args = match Args::try_parse_from(argv) {
        Ok(args) => args,
        Err(e) => {
            // --help to stdout (exit 0), usage errors to stderr (exit 2).
            let _ = e.print();
            return e.exit_code();
        }
    };
    match run(&args) {
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

fn run(args: &Args) -> Result<serde_json::Value, String> {
    let settings = args.settings()?;
    let (file, verbose) = (args.file.as_str(), args.verbose);
    if !verbose {
        whisper_rs::install_logging_hooks();
    }

    let log = |m: &str| {
        if verbose {
            eprintln!("{m}")
        }
    };
    let t = Instant::now();
    let model = mediaflow_models::resolve_for_step(&settings.model).map_err(|e| e.to_string())?;
    let models = Models::new(1);
    let loaded = models
        .get(&model, settings.wants_dtw(), &log)
        .map_err(|e| e.to_string())?;
    let load = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let ext = Path::new(file)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("");
    let mut stream = audio::Stream::open(Path::new(file), file, &[ext], settings.max_duration())
        .map_err(|e| e.to_string())?;
    let open = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let declared = stream.info().declared_seconds;
    let vad = transcribe::vad_model(&settings, declared.unwrap_or(f64::INFINITY), &log)
        .map_err(|e| e.to_string())?;
    // With --progress (or --verbose), progress goes to stderr as it changes by a percent.
    let (mut shown, show) = (-1.0f32, args.progress || verbose);
    let progress = Box::new(move |done: f32, what: Option<&str>| {
        if show && (what.is_some() || done - shown >= 0.01) {
            shown = done;
            eprintln!(
                "progress {:.0}%{}",
                done * 100.0,
                what.map(|w| format!(" {w}")).unwrap_or_default()
            );
        }
    });
    let out = windows::run(
        &models,
        &model,
        vad.as_deref(),
        &mut stream,
        &settings,
        progress,
        &log,
        || false,
    )
    .map_err(|e| e.to_string())?;
    let run = t.elapsed().as_secs_f64();
    let seconds = out.audio_seconds;
    if verbose {
        loaded.ctx.print_timings();
    }
    let segments = subtitles::tidy(out.segments);
    let text: Vec<&str> = segments.iter().map(|s| s.text.as_str()).collect();
    Ok(json!({
        "text": text.join(" "),
        "language": out.language,
        "segments": segments,
        "words": settings.word_timestamps.then_some(&out.words),
        "word_alignment": settings.word_timestamps.then_some(if loaded.dtw { "dtw" } else { "tokens" }),
        "vad": out.speech_seconds.is_some(),
        "speech_seconds": out.speech_seconds,
        "audio_seconds": seconds,
        "seconds": {"load": load, "open": open, "transcribe": run},
        "realtime_factor": run / seconds.max(1e-9),
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once(COMMAND).chain(args.iter().copied()))
    }

    #[test]
    fn options_become_settings() {
        Args::command().debug_assert();
        let args = parse(&[
            "clip.wav",
            "--model",
            "/models/ggml-tiny.en.bin",
            "--language",
            "en",
            "--beam-size",
            "5",
            "--threads",
            "2",
            "--audio-ctx",
            "768",
            "--no-fallback",
            "--verbose",
        ])
        .unwrap();
        assert_eq!(args.file, "clip.wav");
        assert!(args.verbose);
        let s = args.settings().unwrap();
        assert_eq!(s.model, "/models/ggml-tiny.en.bin");
        assert_eq!(s.language, "en");
        assert_eq!(
            (s.beam_size, s.threads, s.audio_ctx, s.temperature_fallback),
            (5, Some(2), Some(768), Some(false))
        );
    }

    #[test]
    fn defaults_are_the_step_defaults() {
        let args = parse(&["--beam-size", "1", "clip.wav"]).unwrap();
        assert!(!args.verbose);
        let s = args.settings().unwrap();
        assert_eq!(s.model, transcribe::default_model());
        assert_eq!(s.language, "auto");
        assert_eq!(
            (s.beam_size, s.threads, s.audio_ctx, s.temperature_fallback),
            (1, None, None, None)
        );
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        use clap::error::ErrorKind;
        let kind = |args: &[&str]| parse(args).map(|_| ()).unwrap_err().kind();
        assert_eq!(kind(&[]), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            kind(&["a.wav", "--beam-size", "five"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(kind(&["a.wav", "--model"]), ErrorKind::InvalidValue);
        assert_eq!(kind(&["a.wav", "--speed", "2"]), ErrorKind::UnknownArgument);
        assert_eq!(kind(&["-h"]), ErrorKind::DisplayHelp);
        assert_eq!(kind(&["--help"]), ErrorKind::DisplayHelp);
    }
}

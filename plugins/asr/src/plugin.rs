//! `audio.transcribe`: the descriptor, config checks and the call.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use mediaflow_plugin_api::{
    ArtifactRef, ConfigIssue, Descriptor, JsonSchema, PluginError, RunContext, TypedPlugin,
};
use mediaflow_plugin_support::PinnedThread;
use serde::Serialize;

use crate::audio::{self, AudioError};
use crate::cues::{self, Word};
use crate::subtitles::{self, Segment};
use crate::transcribe::{self, Models, Settings, TranscribeError};
use crate::windows;

pub struct Transcribe {
    descriptor: Descriptor,
    models: Arc<Models>,
    /// Every transcription runs on this one thread (see [`PinnedThread`]).
    worker: PinnedThread,
}

/// One timed piece of the transcript.
#[derive(Serialize, JsonSchema)]
pub struct TimedText {
    /// Seconds from the start of the audio.
    pub start: f64,
    pub end: f64,
    pub text: String,
}

/// The outputs of `audio.transcribe`.
#[derive(Serialize, JsonSchema)]
pub struct Transcription {
    /// The whole transcript.
    pub text: String,
    /// The spoken language (detected with `language: auto`).
    pub language: String,
    /// `[{start, end, text}]`, seconds.
    pub segments: Vec<TimedText>,
    /// With `word_timestamps: true`: `[{word, start, end, probability}]`, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<Word>>,
    /// SubRip subtitles, cues built from word timings to `max_line_chars`, `max_lines` and
    /// `max_chars_per_second`.
    pub srt: ArtifactRef,
    /// WebVTT subtitles.
    pub vtt: ArtifactRef,
    /// Seconds of audio.
    pub duration: f64,
    /// With voice activity detection: the seconds of speech it found and transcribed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speech_duration: Option<f64>,
    /// Processing time / audio duration.
    pub realtime_factor: f64,
}

/// `audio.transcribe`'s descriptor, from [`Settings`] and [`Transcription`].
pub fn descriptor() -> Descriptor {
    Descriptor::from_config::<Settings>(
        "audio.transcribe",
        "1.0.0",
        "Transcribe speech (whisper.cpp): text, language, timed segments, SRT and WebVTT subtitles",
    )
    .inputs(["audio", "initial_prompt"])
    .outputs_from::<Transcription>()
    .max_concurrency(1)
}

fn media_hints(artifact: &ArtifactRef) -> Vec<String> {
    let mut hints = vec![artifact.media_type.clone()];
    if let Some(ext) = artifact
        .name
        .as_deref()
        .and_then(|n| Path::new(n).extension())
        .and_then(|e| e.to_str())
    {
        hints.push(ext.to_ascii_lowercase());
    }
    hints
}

fn stem(artifact: &ArtifactRef) -> String {
    artifact
        .name
        .as_deref()
        .and_then(|n| Path::new(n).file_stem())
        .and_then(|s| s.to_str())
        .unwrap_or("transcript")
        .to_owned()
}

impl From<AudioError> for PluginError {
    fn from(e: AudioError) -> Self {
        let err = match &e {
            AudioError::Io { .. } => PluginError::new(e.code(), e.to_string()).retryable(),
            _ => PluginError::new(e.code(), e.to_string()),
        };
        match e.help() {
            Some(h) => err.with_help(h),
            None => err,
        }
    }
}

impl From<TranscribeError> for PluginError {
    fn from(e: TranscribeError) -> Self {
        match e {
            TranscribeError::Cancelled => PluginError::cancelled(),
            TranscribeError::Audio(e) => e.into(),
            TranscribeError::NotWhisper { .. } => PluginError::new("bad_model", e.to_string())
                .with_help("give a whisper.cpp ggml model: `mediaflow models pull whisper-base` (or whisper-tiny.en)"),
            TranscribeError::Load { .. } | TranscribeError::Invalid(_) => {
                PluginError::new("bad_model", e.to_string())
                    .with_help("pull it again (`mediaflow models rm NAME && mediaflow models pull NAME`) or give another whisper.cpp ggml file")
            }
            TranscribeError::Whisper(_) => PluginError::new("transcribe", e.to_string()).retryable(),
        }
    }
}

impl Default for Transcribe {
    fn default() -> Self {
        Self::new()
    }
}

impl Transcribe {
    pub fn new() -> Self {
        // whisper.cpp logs every model load and decode to stderr; keep the plugin's stderr
        // for real failures.
        whisper_rs::install_logging_hooks();
        let keep = std::env::var("MEDIAFLOW_ASR_MODELS_LOADED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2);
        Transcribe {
            descriptor: descriptor(),
            models: Arc::new(Models::new(keep)),
            worker: PinnedThread::start("whisper"),
        }
    }
}

#[async_trait::async_trait]
impl TypedPlugin for Transcribe {
    type Config = Settings;
    type Output = Transcription;

    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn check(&self, settings: &Settings) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if settings.translate && settings.model.ends_with(".en") {
            issues.push(
                ConfigIssue::new("/translate", "English-only models cannot translate")
                    .with_help("use a multilingual model such as `whisper-base`"),
            );
        }
        if settings.max_duration().is_none() {
            issues.push(
                ConfigIssue::new(
                    "/max_duration",
                    format!("`{}` is not a duration", settings.max_duration),
                )
                .with_help("write it like `90m`, `4h` or `45s`"),
            );
        }
        issues
    }

    async fn run(&self, settings: Settings, cx: &RunContext) -> Result<Transcription, PluginError> {
        let artifact = settings
            .audio
            .clone()
            .ok_or_else(|| PluginError::new("bad_config", "`audio` is not a file"))?;
        let model_path = mediaflow_models::resolve_for_step(&settings.model)?;
        let audio_path = cx.artifact_path(&artifact).await?;

        cx.progress(0.0, Some("decoding audio"));
        let hints = media_hints(&artifact);
        let label = match &artifact.name {
            Some(name) => format!("{name} (artifact {})", &artifact.sha256[..12]),
            None => format!("artifact {}", &artifact.sha256[..12]),
        };
        let max_duration = settings.max_duration();
        let settings_limits = settings.cue_limits();
        let want_words = settings.word_timestamps;
        let mut stream = tokio::task::spawn_blocking(move || {
            let hints: Vec<&str> = hints.iter().map(String::as_str).collect();
            audio::Stream::open(&audio_path, &label, &hints, max_duration)
        })
        .await
        .map_err(|e| PluginError::new("decode", format!("the decoder died: {e}")).retryable())??;
        let info = stream.info().clone();
        cx.info(&format!(
            "{} of audio ({}, {} Hz, {} channel(s)); model {}",
            info.declared_seconds
                .map_or("an unknown length".into(), |s| format!("{s:.1} s")),
            info.codec,
            info.source_rate,
            info.source_channels,
            settings.model
        ));

        // Without a declared length, the audio counts as long (over 30 s) here; `run` drops
        // a default VAD for audio that turns out short.
        let vad_model = transcribe::vad_model(
            &settings,
            info.declared_seconds.unwrap_or(f64::INFINITY),
            &|m| cx.info(m),
        )?;
        let models = self.models.clone();
        let progress_cx = cx.clone();
        let log_cx = cx.clone();
        let token = cx.cancel_token().clone();
        let started = Instant::now();
        let transcript = self
            .worker
            .run(move || {
                let progress =
                    Box::new(move |done: f32, what: Option<&str>| progress_cx.progress(done, what));
                windows::run(
                    &models,
                    &model_path,
                    vad_model.as_deref(),
                    &mut stream,
                    &settings,
                    progress,
                    &|m| log_cx.info(m),
                    move || token.is_cancelled(),
                )
            })
            .await
            .ok_or_else(|| {
                PluginError::new(
                    mediaflow_protocol::PLUGIN_BROKEN,
                    "the transcription thread is gone; the plugin process restarts",
                )
                .retryable()
            })??;
        let seconds = transcript.audio_seconds;
        let elapsed = started.elapsed().as_secs_f64();

        let segments = subtitles::tidy(transcript.segments);
        let mut words = transcript.words;
        if words.is_empty() {
            words = cues::words_of_segments(&segments);
        }
        for w in &mut words {
            w.start = round3(w.start);
            w.end = round3(w.end);
        }
        let cues = cues::build(&words, &settings_limits);
        let text = segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let name = stem(&artifact);
        let store = |ext: &'static str, media_type: &'static str, body: String| {
            let file_name = format!("{name}.{ext}");
            async move {
                cx.artifacts()
                    .put_bytes(body.as_bytes(), media_type, Some(&file_name))
                    .await
            }
        };
        let srt = store("srt", "application/x-subrip", subtitles::srt(&cues)).await?;
        let vtt = store("vtt", "text/vtt", subtitles::vtt(&cues)).await?;
        Ok(Transcription {
            text,
            language: transcript.language,
            segments: segments.iter().map(timed).collect(),
            words: want_words.then_some(words),
            srt,
            vtt,
            duration: round3(seconds),
            speech_duration: transcript.speech_seconds.map(round3),
            realtime_factor: round3(elapsed / seconds.max(1e-9)),
        })
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn timed(s: &Segment) -> TimedText {
    TimedText {
        start: round3(s.start),
        end: round3(s.end),
        text: s.text.clone(),
    }
}

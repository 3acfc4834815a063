//! `audio.transcribe`: the descriptor, config checks and the call.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use mediaflow_plugin_api::{
    ArtifactRef, ConfigIssue, Descriptor, Plugin, PluginError, Port, RunContext, Value, ValueType,
};
use mediaflow_plugin_support::PinnedThread;
use serde_json::json;

use crate::audio::{self, AudioError};
use crate::subtitles::{self, Segment};
use crate::transcribe::{self, Models, Settings, TranscribeError};

pub struct Transcribe {
    descriptor: Descriptor,
    models: Arc<Models>,
    /// Every transcription runs on this one thread (see [`PinnedThread`]).
    worker: PinnedThread,
}

fn schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["audio"],
        "properties": {
            "audio": {"type": "object", "description": "the audio file (a `file` input or an artifact from an earlier step): WAV, FLAC, MP3, Ogg/Vorbis, AIFF, M4A/AAC or MP4"},
            "model": {"type": "string", "default": transcribe::default_model(), "description": "a catalog name (`whisper-tiny.en`, `whisper-base`), a name given to `mediaflow models add`, or a path to a whisper.cpp ggml file"},
            "language": {"enum": languages(), "default": "auto", "description": "`auto` to detect it, or a code such as `en`, `de`, `fr` (English-only models always use `en`)"},
            "translate": {"type": "boolean", "default": false, "description": "translate the speech into English"},
            "beam_size": {"type": "integer", "minimum": 1, "maximum": 16, "default": 5, "description": "1 = greedy decoding (faster), more = beam search (more accurate)"},
            "initial_prompt": {"type": ["string", "null"], "description": "text that primes the model: names, places and terms the audio is likely to contain, spelled as they should come out (empty = none)"},
            "threads": {"type": "integer", "minimum": 1, "maximum": 256, "description": "CPU threads (default: all cores, at most 8)"},
            "audio_ctx": {"type": "integer", "minimum": 0, "maximum": 1500, "description": "encoder context: 1500 = 30 s (the default, 0); smaller values encode short clips faster at some cost in accuracy"},
            "max_segment_chars": {"type": "integer", "minimum": 0, "description": "split segments (subtitle cues) longer than this many characters, at word boundaries (0 = whisper's own segments)"},
            "temperature_fallback": {"type": "boolean", "default": true, "description": "decode again at higher temperatures when the output looks like a loop or is unlikely (whisper's default); off = faster, fully deterministic"}
        }
    })
}

/// `auto` and every language code whisper knows.
fn languages() -> Vec<String> {
    let mut out = vec!["auto".to_owned()];
    out.extend(
        (0..=whisper_rs::get_lang_max_id())
            .filter_map(whisper_rs::get_lang_str)
            .map(str::to_owned),
    );
    out
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
            AudioError::Io { .. } => PluginError::new(e.code(), e.to_string()),
            _ => PluginError::fatal(e.code(), e.to_string()),
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
            TranscribeError::NotWhisper { .. } => PluginError::fatal("bad_model", e.to_string())
                .with_help("give a whisper.cpp ggml model: `mediaflow models pull whisper-base` (or whisper-tiny.en)"),
            TranscribeError::Load { .. } | TranscribeError::Invalid(_) => {
                PluginError::fatal("bad_model", e.to_string())
                    .with_help("pull it again (`mediaflow models rm NAME && mediaflow models pull NAME`) or give another whisper.cpp ggml file")
            }
            TranscribeError::Whisper(_) => PluginError::new("transcribe", e.to_string()),
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
        let descriptor = Descriptor::new(
            "audio.transcribe",
            "1.0.0",
            "Transcribe speech (whisper.cpp): text, language, timed segments, SRT and WebVTT subtitles",
        )
        .input(Port::new("audio", ValueType::File).required())
        .input(Port::new("initial_prompt", ValueType::String))
        .output(Port::new("text", ValueType::String).describe("the whole transcript"))
        .output(Port::new("language", ValueType::String).describe("the spoken language (detected with `language: auto`)"))
        .output(Port::new("segments", ValueType::List).describe("[{start, end, text}], seconds"))
        .output(Port::new("srt", ValueType::File).describe("SubRip subtitles"))
        .output(Port::new("vtt", ValueType::File).describe("WebVTT subtitles"))
        .output(Port::new("duration", ValueType::Number).describe("seconds of audio"))
        .output(Port::new("realtime_factor", ValueType::Number).describe("processing time / audio duration"))
        .capability("asr")
        .max_concurrency(1)
        .schema(schema());
        Transcribe {
            descriptor,
            models: Arc::new(Models::new(keep)),
            worker: PinnedThread::start("whisper"),
        }
    }
}

#[async_trait::async_trait]
impl Plugin for Transcribe {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn validate(&self, config: &Value) -> Result<(), Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        if config.get("translate").and_then(Value::as_bool) == Some(true)
            && config
                .get("model")
                .and_then(Value::as_str)
                .is_some_and(|m| m.ends_with(".en"))
        {
            issues.push(
                ConfigIssue::new("/translate", "English-only models cannot translate")
                    .with_help("use a multilingual model such as `whisper-base`"),
            );
        }
        if issues.is_empty() {
            Ok(())
        } else {
            Err(issues)
        }
    }

    async fn run(&self, config: Value, cx: &RunContext) -> Result<Value, PluginError> {
        // The host checks the schema when the workflow compiles; the checks that need
        // more than the schema run here, before any work.
        if let Err(issues) = self.validate(&config) {
            let first = &issues[0];
            let err = PluginError::fatal(
                "bad_config",
                format!(
                    "`{}`: {}",
                    first.pointer.trim_start_matches('/'),
                    first.message
                ),
            );
            return Err(match &first.help {
                Some(h) => err.with_help(h.clone()),
                None => err,
            });
        }
        let artifact = config
            .get("audio")
            .and_then(ArtifactRef::from_value)
            .ok_or_else(|| PluginError::fatal("bad_config", "`audio` is not a file"))?;
        let settings: Settings = serde_json::from_value(config)
            .map_err(|e| PluginError::fatal("bad_config", format!("invalid settings: {e}")))?;
        let model_path = mediaflow_models::resolve_for_step(&settings.model)?;
        let audio_path = cx.artifact_path(&artifact).await?;

        cx.progress(0.0, Some("decoding audio"));
        let hints = media_hints(&artifact);
        let label = match &artifact.name {
            Some(name) => format!("{name} (artifact {})", &artifact.sha256[..12]),
            None => format!("artifact {}", &artifact.sha256[..12]),
        };
        let decoded = tokio::task::spawn_blocking(move || {
            let hints: Vec<&str> = hints.iter().map(String::as_str).collect();
            audio::load(&audio_path, &label, &hints)
        })
        .await
        .map_err(|e| PluginError::new("decode", format!("the decoder died: {e}")))??;
        let seconds = decoded.seconds();
        cx.info(&format!(
            "{:.1} s of audio ({}, {} Hz, {} channel(s)); model {}",
            seconds, decoded.codec, decoded.source_rate, decoded.source_channels, settings.model
        ));

        let models = self.models.clone();
        let progress_cx = cx.clone();
        let token = cx.cancel_token().clone();
        let started = Instant::now();
        let transcript = self
            .worker
            .run(move || {
                let ctx = models.get(&model_path)?;
                progress_cx.progress(0.02, Some("transcribing"));
                let progress = Box::new(move |pct: i32| {
                    progress_cx.progress(0.02 + 0.98 * pct.clamp(0, 100) as f32 / 100.0, None)
                });
                transcribe::transcribe(&ctx, &decoded.samples, &settings, progress, move || {
                    token.is_cancelled()
                })
            })
            .await
            .ok_or_else(|| PluginError::new("transcribe", "the transcription thread is gone"))??;
        let elapsed = started.elapsed().as_secs_f64();

        let segments = subtitles::tidy(transcript.segments);
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
                    .map(|a| a.to_value())
            }
        };
        let srt = store("srt", "application/x-subrip", subtitles::srt(&segments)).await?;
        let vtt = store("vtt", "text/vtt", subtitles::vtt(&segments)).await?;
        Ok(json!({
            "text": text,
            "language": transcript.language,
            "segments": segments.iter().map(segment_json).collect::<Vec<_>>(),
            "srt": srt,
            "vtt": vtt,
            "duration": round3(seconds),
            "realtime_factor": round3(elapsed / seconds.max(1e-9)),
        }))
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn segment_json(s: &Segment) -> Value {
    json!({"start": round3(s.start), "end": round3(s.end), "text": s.text})
}

//! whisper.cpp through whisper-rs: loaded models, settings, one transcription.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mediaflow_plugin_api::{schemars, ArtifactRef, JsonSchema};
use serde::Deserialize;
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use crate::audio::SAMPLE_RATE;
use crate::subtitles::Segment;

/// A step's settings: the whole `with:` map of `audio.transcribe`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The audio file (a `file` input or an artifact from an earlier step): WAV, FLAC, MP3,
    /// Ogg/Vorbis, AIFF, M4A/AAC or MP4. Absent only when transcribing from the command
    /// line.
    #[serde(default)]
    #[schemars(required)]
    pub audio: Option<ArtifactRef>,
    /// A catalog name (`whisper-tiny.en`, `whisper-base`), a name given to
    /// `mediaflow models add`, or a path to a whisper.cpp ggml file.
    #[serde(default = "default_model")]
    pub model: String,
    /// `auto` to detect it, or a code such as `en`, `de`, `fr` (English-only models always
    /// use `en`).
    #[serde(default = "default_language")]
    #[schemars(schema_with = "language_schema")]
    pub language: String,
    /// Translate the speech into English.
    #[serde(default)]
    pub translate: bool,
    /// 1 = greedy decoding (faster), more = beam search (more accurate).
    #[serde(default = "default_beam")]
    #[schemars(range(min = 1, max = 16))]
    pub beam_size: u32,
    /// Text that primes the model: names, places and terms the audio is likely to contain,
    /// spelled as they should come out (empty = none).
    #[serde(default)]
    pub initial_prompt: Option<String>,
    /// CPU threads (default: all cores, at most 8).
    #[serde(default)]
    #[schemars(range(min = 1, max = 256))]
    pub threads: Option<u32>,
    /// Encoder context: 1500 = 30 s (the default, 0); smaller values encode short clips
    /// faster at some cost in accuracy.
    #[serde(default)]
    #[schemars(range(max = 1500))]
    pub audio_ctx: Option<u32>,
    /// Split segments (subtitle cues) longer than this many characters, at word boundaries
    /// (0 = whisper's own segments).
    #[serde(default)]
    pub max_segment_chars: Option<u32>,
    /// Decode again at higher temperatures when the output looks like a loop or is
    /// unlikely (whisper's default); off = faster, fully deterministic.
    #[serde(default)]
    pub temperature_fallback: Option<bool>,
    /// Refuse audio longer than this (`90m`, `4h`): a longer file fails the step at once
    /// with `too_long` instead of occupying the transcriber for hours.
    #[serde(default = "default_max_duration")]
    pub max_duration: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            audio: None,
            model: default_model(),
            language: default_language(),
            translate: false,
            beam_size: default_beam(),
            initial_prompt: None,
            threads: None,
            audio_ctx: None,
            max_segment_chars: None,
            temperature_fallback: None,
            max_duration: default_max_duration(),
        }
    }
}

/// `auto` and every language code whisper knows, as an enum.
fn language_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut codes = vec!["auto".to_owned()];
    codes.extend(
        (0..=whisper_rs::get_lang_max_id())
            .filter_map(whisper_rs::get_lang_str)
            .map(str::to_owned),
    );
    schemars::json_schema!({"enum": codes, "default": "auto"})
}

pub fn default_model() -> String {
    "whisper-base".into()
}
fn default_language() -> String {
    "auto".into()
}
fn default_beam() -> u32 {
    5
}
fn default_max_duration() -> String {
    "4h".into()
}

impl Settings {
    /// `max_duration` as a duration (`check` has refused one that does not parse).
    pub fn max_duration(&self) -> Option<std::time::Duration> {
        mediaflow_plugin_api::parse_duration(&self.max_duration)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TranscribeError {
    #[error("{path} is not a whisper.cpp model (ggml)")]
    NotWhisper { path: String },
    #[error("cannot load the whisper model {path}: {message}")]
    Load { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("whisper.cpp failed: {0}")]
    Whisper(String),
    #[error("cancelled")]
    Cancelled,
}

/// The text, the language and the timed segments.
#[derive(Debug)]
pub struct Transcript {
    pub language: String,
    pub segments: Vec<Segment>,
}

/// Loaded models, by path; the least recently used is dropped when more than `keep` are
/// loaded.
pub struct Models {
    loaded: Mutex<Vec<(PathBuf, Arc<WhisperContext>)>>,
    keep: usize,
}

impl Models {
    pub fn new(keep: usize) -> Self {
        Models {
            loaded: Mutex::new(Vec::new()),
            keep: keep.max(1),
        }
    }

    pub fn get(&self, path: &Path) -> Result<Arc<WhisperContext>, TranscribeError> {
        let display = path.display().to_string();
        if let Ok(mut loaded) = self.loaded.lock() {
            if let Some(i) = loaded.iter().position(|(p, _)| p == path) {
                let entry = loaded.remove(i);
                let ctx = entry.1.clone();
                loaded.push(entry);
                return Ok(ctx);
            }
        }
        if !mediaflow_asr_convert::is_ggml(path) {
            return Err(TranscribeError::NotWhisper { path: display });
        }
        mediaflow_asr_convert::check_ggml(path)
            .map_err(|e| TranscribeError::Invalid(e.to_string()))?;
        let mut params = WhisperContextParameters::default();
        params.flash_attn(flash_attention());
        let ctx = WhisperContext::new_with_params(&display, params).map_err(|e| {
            TranscribeError::Load {
                path: display.clone(),
                message: e.to_string(),
            }
        })?;
        let ctx = Arc::new(ctx);
        if let Ok(mut loaded) = self.loaded.lock() {
            if loaded.len() >= self.keep {
                loaded.remove(0);
            }
            loaded.push((path.to_path_buf(), ctx.clone()));
        }
        Ok(ctx)
    }
}

/// Flash attention in whisper.cpp's encoder and decoder: on unless
/// `MEDIAFLOW_ASR_FLASH_ATTN=0`.
fn flash_attention() -> bool {
    std::env::var("MEDIAFLOW_ASR_FLASH_ATTN").map_or(true, |v| v != "0")
}

pub fn default_threads() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(4)
        .min(8)
}

/// Transcribes 16 kHz mono samples. `progress` gets percentages; `abort` is polled while
/// whisper.cpp computes and stops it when it returns true.
pub fn transcribe(
    ctx: &WhisperContext,
    samples: &[f32],
    s: &Settings,
    progress: Box<dyn FnMut(i32)>,
    abort: impl Fn() -> bool + Clone + 'static,
) -> Result<Transcript, TranscribeError> {
    let mut state = ctx
        .create_state()
        .map_err(|e| TranscribeError::Whisper(e.to_string()))?;
    let strategy = if s.beam_size <= 1 {
        SamplingStrategy::Greedy { best_of: 1 }
    } else {
        SamplingStrategy::BeamSearch {
            beam_size: s.beam_size as i32,
            patience: -1.0,
        }
    };
    let mut p = FullParams::new(strategy);
    p.set_n_threads(s.threads.unwrap_or_else(default_threads) as i32);
    let language = s.language.as_str();
    p.set_language(Some(if ctx.is_multilingual() {
        language
    } else {
        "en"
    }));
    p.set_translate(s.translate);
    if let Some(prompt) = s.initial_prompt.as_deref().filter(|p| !p.trim().is_empty()) {
        p.set_initial_prompt(prompt);
    }
    if let Some(n) = s.audio_ctx.filter(|n| *n > 0) {
        p.set_audio_ctx(n as i32);
    }
    if let Some(n) = s.max_segment_chars.filter(|n| *n > 0) {
        p.set_max_len(n as i32);
        p.set_split_on_word(true);
        p.set_token_timestamps(true);
    }
    if s.temperature_fallback == Some(false) {
        p.set_temperature_inc(0.0);
    }
    p.set_print_progress(false);
    p.set_print_realtime(false);
    p.set_print_special(false);
    p.set_print_timestamps(false);
    p.set_progress_callback_safe(progress);
    // whisper-rs calls the abort closure through a pointer of the closure's own type, so the
    // closure passed must be the boxed trait object itself.
    let poll: Box<dyn FnMut() -> bool> = Box::new(abort.clone());
    p.set_abort_callback_safe::<_, Box<dyn FnMut() -> bool>>(poll);

    // whisper.cpp ignores input shorter than a second; pad short clips with silence.
    let min = SAMPLE_RATE as usize + SAMPLE_RATE as usize / 10;
    let padded;
    let samples = if samples.len() < min {
        padded = [samples, &vec![0.0; min - samples.len()]].concat();
        &padded[..]
    } else {
        samples
    };
    if let Err(e) = state.full(p, samples) {
        return Err(if abort() {
            TranscribeError::Cancelled
        } else {
            TranscribeError::Whisper(e.to_string())
        });
    }
    let language = whisper_rs::get_lang_str(state.full_lang_id_from_state())
        .unwrap_or(if ctx.is_multilingual() { "" } else { "en" })
        .to_owned();
    let segments = state
        .as_iter()
        .map(|seg| Segment {
            start: seg.start_timestamp() as f64 / 100.0,
            end: seg.end_timestamp() as f64 / 100.0,
            text: seg
                .to_str_lossy()
                .map(|t| t.trim().to_owned())
                .unwrap_or_default(),
        })
        .collect();
    Ok(Transcript { language, segments })
}

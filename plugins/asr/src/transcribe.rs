//! whisper.cpp through whisper-rs: loaded models, settings, one transcription.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mediaflow_plugin_api::{schemars, ArtifactRef, JsonSchema};
use serde::Deserialize;
use whisper_rs::{
    DtwMode, DtwParameters, FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters,
};

use crate::align::{segment_words, Token};
use crate::audio::SAMPLE_RATE;
use crate::cues::Word;
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
    /// A catalog name (`whisper-base-q8_0`, `whisper-tiny.en-q8_0`, `whisper-base` for f16,
    /// …), a name given to `mediaflow models add`, or a path to a whisper.cpp ggml file.
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
    /// Encoder context in frames of 20 ms: 1500 = 30 s, whisper's own. Unset: trimmed to
    /// the clip (plus 2 s) for audio under 26 s when the language is known (set, or an
    /// English-only model), which encodes short clips 2–3× faster; 0 or 1500: always the
    /// full context. With DTW word alignment a set context is widened to the clip (DTW
    /// cannot align audio the encoder did not see).
    #[serde(default)]
    #[schemars(range(max = 1500))]
    pub audio_ctx: Option<u32>,
    /// Split segments longer than this many characters, at word boundaries (0 = whisper's
    /// own segments). Subtitle cues are built from word timings either way.
    #[serde(default)]
    pub max_segment_chars: Option<u32>,
    /// Output `words`: each word with its start, end and probability. Subtitle cues are
    /// timed from the same words.
    #[serde(default)]
    pub word_timestamps: bool,
    /// With `word_timestamps`: `dtw` aligns the words to the audio with the model's
    /// cross-attention alignment heads (OpenAI's method; whisper.cpp knows the heads of
    /// every released Whisper size, and other models fall back to `tokens`); `tokens` uses
    /// the cheaper timestamp-token estimates, which keeps flash attention on and skips a
    /// decoder pass per 30 s.
    #[serde(default)]
    pub word_alignment: crate::align::WordAlignment,
    /// Subtitles: characters per line at most.
    #[serde(default = "default_line_chars")]
    #[schemars(range(min = 16, max = 200))]
    pub max_line_chars: u32,
    /// Subtitles: lines per cue at most.
    #[serde(default = "default_lines")]
    #[schemars(range(min = 1, max = 4))]
    pub max_lines: u32,
    /// Subtitles: reading speed at most, in characters a second (spaces not counted).
    #[serde(default = "default_cps")]
    #[schemars(range(min = 5.0, max = 60.0))]
    pub max_chars_per_second: f64,
    /// Voice activity detection: transcribe only the speech, found by whisper.cpp's Silero
    /// VAD (`mediaflow models pull silero-vad`); times stay in the file's own time. Default:
    /// on for audio over 30 s when the VAD model is installed.
    #[serde(default)]
    pub vad: Option<bool>,
    /// The VAD model: a catalog name, a name given to `mediaflow models add`, or a path.
    #[serde(default = "default_vad_model")]
    pub vad_model: String,
    /// VAD: the speech probability above which a window counts as speech.
    #[serde(default = "default_vad_threshold")]
    #[schemars(range(min = 0.05, max = 0.95))]
    pub vad_threshold: f32,
    /// VAD: silences shorter than this many milliseconds are kept.
    #[serde(default = "default_vad_min_silence")]
    #[schemars(range(max = 10000))]
    pub vad_min_silence_ms: u32,
    /// VAD: milliseconds of audio kept before and after each stretch of speech.
    #[serde(default = "default_vad_pad")]
    #[schemars(range(max = 2000))]
    pub vad_speech_pad_ms: u32,
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
            word_timestamps: false,
            word_alignment: Default::default(),
            vad: None,
            vad_model: default_vad_model(),
            vad_threshold: default_vad_threshold(),
            vad_min_silence_ms: default_vad_min_silence(),
            vad_speech_pad_ms: default_vad_pad(),
            max_line_chars: default_line_chars(),
            max_lines: default_lines(),
            max_chars_per_second: default_cps(),
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

/// Each size's default weight type is q8_0: as accurate as f16 on our test speech (and on
/// base's benchmark bulletin), faster, and 20–25% less memory (README, *Speed and
/// accuracy*).
pub fn default_model() -> String {
    "whisper-base-q8_0".into()
}
fn default_language() -> String {
    "auto".into()
}
fn default_beam() -> u32 {
    5
}
fn default_vad_model() -> String {
    "silero-vad".into()
}
fn default_vad_threshold() -> f32 {
    0.5
}
fn default_vad_min_silence() -> u32 {
    500
}
fn default_vad_pad() -> u32 {
    200
}
fn default_line_chars() -> u32 {
    42
}
fn default_lines() -> u32 {
    2
}
fn default_cps() -> f64 {
    17.0
}
fn default_max_duration() -> String {
    "4h".into()
}

impl Settings {
    /// The limits subtitle cues are built to.
    pub fn cue_limits(&self) -> crate::cues::Limits {
        crate::cues::Limits {
            max_line_chars: self.max_line_chars as usize,
            max_lines: self.max_lines as usize,
            max_cps: self.max_chars_per_second,
            ..crate::cues::Limits::default()
        }
    }

    /// The VAD settings.
    pub fn vad_options(&self) -> crate::vad::VadOptions {
        crate::vad::VadOptions {
            threshold: self.vad_threshold,
            min_silence_ms: self.vad_min_silence_ms,
            speech_pad_ms: self.vad_speech_pad_ms,
            min_speech_ms: 250,
        }
    }

    /// Whether word times should come from DTW alignment heads.
    pub fn wants_dtw(&self) -> bool {
        self.word_timestamps && self.word_alignment == crate::align::WordAlignment::Dtw
    }

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
    #[error(transparent)]
    Audio(#[from] crate::audio::AudioError),
}

/// The text, the language, the timed segments and their words.
#[derive(Debug)]
pub struct Transcript {
    pub language: String,
    pub segments: Vec<Segment>,
    pub words: Vec<Word>,
    /// Seconds of audio transcribed after voice activity detection, if it ran.
    pub speech_seconds: Option<f64>,
    /// Seconds of audio in all.
    pub audio_seconds: f64,
}

/// A loaded model, and whether it computes DTW word times (with its alignment heads).
#[derive(Clone)]
pub struct Loaded {
    pub ctx: Arc<WhisperContext>,
    pub dtw: bool,
}

/// Loaded models, by path and whether they align words by DTW (such a model is loaded
/// without flash attention); the least recently used is dropped when more than `keep` are
/// loaded.
pub struct Models {
    loaded: Mutex<Vec<((PathBuf, bool), Loaded)>>,
    keep: usize,
    /// The VAD model, loaded on first use.
    pub vad: crate::vad::Vad,
}

impl Models {
    pub fn new(keep: usize) -> Self {
        Models {
            loaded: Mutex::new(Vec::new()),
            keep: keep.max(1),
            vad: crate::vad::Vad::default(),
        }
    }

    /// The model at `path`; with `dtw`, loaded to align words by DTW when whisper.cpp knows
    /// its alignment heads (`log` says so when it does not, and the model loads without).
    pub fn get(
        &self,
        path: &Path,
        dtw: bool,
        log: &dyn Fn(&str),
    ) -> Result<Loaded, TranscribeError> {
        let display = path.display().to_string();
        let key = (path.to_path_buf(), dtw);
        if let Ok(mut loaded) = self.loaded.lock() {
            if let Some(i) = loaded.iter().position(|(k, _)| *k == key) {
                let entry = loaded.remove(i);
                let model = entry.1.clone();
                loaded.push(entry);
                return Ok(model);
            }
        }
        if !mediaflow_asr_convert::is_ggml(path) {
            return Err(TranscribeError::NotWhisper { path: display });
        }
        let hparams = mediaflow_asr_convert::check_ggml(path)
            .map_err(|e| TranscribeError::Invalid(e.to_string()))?;
        let heads = if dtw {
            crate::align::preset(&hparams)
        } else {
            None
        };
        if dtw && heads.is_none() {
            log(&format!(
                "{display}: whisper.cpp has no alignment heads for this model's shape; \
                 word times come from timestamp tokens"
            ));
        }
        let mut params = WhisperContextParameters::default();
        let aligned = heads.is_some();
        // DTW reads the alignment heads' attention weights, which flash attention never
        // materialises.
        params.flash_attn(flash_attention() && !aligned);
        if let Some(model_preset) = heads {
            params.dtw_parameters(DtwParameters {
                mode: DtwMode::ModelPreset { model_preset },
                ..DtwParameters::default()
            });
        }
        let ctx = WhisperContext::new_with_params(&display, params).map_err(|e| {
            TranscribeError::Load {
                path: display.clone(),
                message: e.to_string(),
            }
        })?;
        let model = Loaded {
            ctx: Arc::new(ctx),
            dtw: aligned,
        };
        if let Ok(mut loaded) = self.loaded.lock() {
            if loaded.len() >= self.keep {
                loaded.remove(0);
            }
            loaded.push((key, model.clone()));
        }
        Ok(model)
    }
}

/// Flash attention in whisper.cpp's encoder and decoder: on unless
/// `MEDIAFLOW_ASR_FLASH_ATTN=0`.
fn flash_attention() -> bool {
    std::env::var("MEDIAFLOW_ASR_FLASH_ATTN").map_or(true, |v| v != "0")
}

/// The encoder context for a clip of `seconds` when the step does not set one: the clip's
/// 50 frames a second plus 2 s, rounded up to 64 frames, for clips under 26 s; `None`
/// (whisper's full 1500) for longer ones.
pub fn auto_audio_ctx(seconds: f64) -> Option<u32> {
    if seconds >= 26.0 {
        return None;
    }
    let frames = ((seconds + 2.0) * 50.0).ceil() as u32;
    Some(frames.div_ceil(64) * 64).map(|n| n.min(1500))
}

pub fn default_threads() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(4)
        .min(8)
}

/// The VAD model a call uses: the step's `vad_model` when `vad` is on, or by default for
/// audio over 30 s when that model is installed (`log` says why not when it is not).
pub fn vad_model(
    s: &Settings,
    seconds: f64,
    log: &dyn Fn(&str),
) -> Result<Option<PathBuf>, mediaflow_models::ModelError> {
    match s.vad {
        Some(false) => Ok(None),
        Some(true) => mediaflow_models::resolve_for_step(&s.vad_model).map(Some),
        None if seconds > 30.0 => match mediaflow_models::resolve_for_step(&s.vad_model) {
            Ok(p) => Ok(Some(p)),
            Err(e) => {
                log(&format!("no voice activity detection: {e}"));
                Ok(None)
            }
        },
        None => Ok(None),
    }
}

/// Progress: the fraction done and, at a new phase, its name.
pub type Progress = Box<dyn FnMut(f32, Option<&str>)>;

/// Transcribes 16 kHz mono samples. `progress` gets percentages; `abort` is polled while
/// whisper.cpp computes and stops it when it returns true.
pub fn transcribe(
    model: &Loaded,
    samples: &[f32],
    s: &Settings,
    progress: Box<dyn FnMut(i32)>,
    abort: impl Fn() -> bool + Clone + 'static,
) -> Result<Transcript, TranscribeError> {
    let ctx = &*model.ctx;
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
    let seconds = samples.len() as f64 / f64::from(SAMPLE_RATE);
    match s.audio_ctx {
        Some(0) => {}
        // DTW aligns the whole chunk against the encoder's output, and whisper.cpp aborts
        // when the chunk is longer than the context: never shorter than the clip then.
        Some(n) if model.dtw => {
            let clip = auto_audio_ctx(seconds).unwrap_or(1500);
            p.set_audio_ctx(n.max(clip) as i32)
        }
        Some(n) => p.set_audio_ctx(n as i32),
        // Not while detecting the language: a trimmed context garbles a multilingual
        // model's output after `auto` detection (measured: "Tuesday height" for "Tuesday
        // night" on whisper-base).
        None if language != "auto" || !ctx.is_multilingual() => {
            if let Some(n) = auto_audio_ctx(seconds) {
                p.set_audio_ctx(n as i32);
            }
        }
        None => {}
    }
    // Token timestamps give the words their times (cues are built from them).
    p.set_token_timestamps(true);
    if let Some(n) = s.max_segment_chars.filter(|n| *n > 0) {
        p.set_max_len(n as i32);
        p.set_split_on_word(true);
    }
    if s.temperature_fallback == Some(false) {
        p.set_temperature_inc(0.0);
    }
    p.set_print_progress(false);
    p.set_print_realtime(false);
    p.set_print_special(false);
    p.set_print_timestamps(false);
    // whisper-rs never frees the callback it is given, so it gets a handle to the step's
    // callback, which is taken back (and dropped, with the call's context) after the run.
    let slot = std::rc::Rc::new(std::cell::RefCell::new(Some(progress)));
    let handle = slot.clone();
    p.set_progress_callback_safe(move |pct: i32| {
        if let Some(f) = handle.borrow_mut().as_mut() {
            f(pct)
        }
    });
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
    let result = state.full(p, samples);
    slot.borrow_mut().take();
    if let Err(e) = result {
        return Err(if abort() {
            TranscribeError::Cancelled
        } else {
            TranscribeError::Whisper(e.to_string())
        });
    }
    let language = whisper_rs::get_lang_str(state.full_lang_id_from_state())
        .unwrap_or(if ctx.is_multilingual() { "" } else { "en" })
        .to_owned();
    let mut segments = Vec::new();
    let mut words = Vec::new();
    let eot = ctx.token_eot();
    for seg in state.as_iter() {
        let mut segment = Segment {
            start: seg.start_timestamp() as f64 / 100.0,
            end: seg.end_timestamp() as f64 / 100.0,
            text: seg
                .to_str_lossy()
                .map(|t| t.trim().to_owned())
                .unwrap_or_default(),
        };
        let tokens = (0..seg.n_tokens())
            .filter_map(|i| seg.get_token(i))
            .filter_map(|t| {
                let d = t.token_data();
                let bytes = t.to_bytes().ok()?;
                (d.id < eot).then(|| Token {
                    bytes: bytes.to_vec(),
                    t0: d.t0,
                    t1: d.t1,
                    t_dtw: d.t_dtw,
                    p: d.p,
                })
            });
        let first = words.len();
        segment_words(&segment, tokens, model.dtw, &mut words);
        // A segment starts where its first word does: whisper's start timestamp can fall
        // before it, at the end of the speech before (after VAD splicing, in the span before
        // the gap).
        if let Some(w) = words.get(first) {
            segment.start = segment.start.max(w.start).min(segment.end);
        }
        segments.push(segment);
    }
    Ok(Transcript {
        language,
        segments,
        words,
        speech_seconds: None,
        audio_seconds: seconds,
    })
}

impl Transcript {
    /// A transcript with nothing in it yet, in `ctx`'s language if it has only one.
    pub fn empty(ctx: &WhisperContext) -> Self {
        Transcript {
            language: if ctx.is_multilingual() { "" } else { "en" }.to_owned(),
            segments: Vec::new(),
            words: Vec::new(),
            speech_seconds: None,
            audio_seconds: 0.0,
        }
    }

    /// Every segment and word time `dt` seconds later.
    pub fn shift(&mut self, dt: f64) {
        for s in &mut self.segments {
            s.start += dt;
            s.end += dt;
        }
        for w in &mut self.words {
            w.start += dt;
            w.end += dt;
        }
    }

    /// Every segment and word time from spliced time to the file's own time.
    pub fn map_times(&mut self, sp: &crate::vad::Spliced) {
        for s in &mut self.segments {
            s.start = sp.original_start(s.start);
            s.end = sp.original_end(s.end).max(s.start);
        }
        for w in &mut self.words {
            w.start = sp.original_start(w.start);
            w.end = sp.original_end(w.end).max(w.start);
        }
    }
}

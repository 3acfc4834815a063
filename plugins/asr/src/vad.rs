//! Voice activity detection before the decoder: whisper.cpp's Silero VAD (the weights of
//! `silero_vad_v6.onnx`, converted by `mediaflow models pull silero-vad`) finds the speech,
//! only the speech is spliced together (a short silence between spans) and transcribed, and
//! every time whisper.cpp reports — segment and token times alike — is mapped back to the
//! original file's time here. (whisper.cpp's built-in VAD mode maps segment times only, not
//! token times, so words and subtitles would drift: that is why the splicing is ours.)

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use whisper_rs::{WhisperVadContext, WhisperVadContextParams, WhisperVadParams};

use crate::audio::SAMPLE_RATE;
use crate::transcribe::TranscribeError;

/// Silence put between two spliced spans, seconds: enough for the decoder to hear a pause.
const GAP: f64 = 0.1;

/// The step's VAD settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VadOptions {
    pub threshold: f32,
    pub min_silence_ms: u32,
    pub speech_pad_ms: u32,
    pub min_speech_ms: u32,
}

/// Audio with its silences taken out, and the way back to the original's time.
#[derive(Debug)]
pub struct Spliced {
    pub samples: Vec<f32>,
    /// (start in the spliced audio, start in the original, length), seconds.
    pieces: Vec<(f64, f64, f64)>,
}

impl Spliced {
    /// Seconds of the original audio the spliced audio holds.
    pub fn speech_seconds(&self) -> f64 {
        self.pieces.iter().map(|p| p.2).sum()
    }

    /// The spans kept, in the original's time.
    pub fn spans(&self) -> Vec<(f64, f64)> {
        self.pieces.iter().map(|(_, o, l)| (*o, o + l)).collect()
    }

    /// The original time of spliced time `t` where something ends: inside a span, the same
    /// offset into it; in the silence after a span, that span's end.
    pub fn original_end(&self, t: f64) -> f64 {
        let Some(first) = self.pieces.first() else {
            return t;
        };
        let k = self.pieces.partition_point(|p| p.0 <= t);
        if k == 0 {
            return first.1;
        }
        let (p, o, l) = self.pieces[k - 1];
        o + (t - p).clamp(0.0, l)
    }

    /// The original time of spliced time `t` where something starts: as
    /// [`original_end`](Self::original_end), but in the silence after a span, the next
    /// span's start (what starts there is the next span's speech).
    pub fn original_start(&self, t: f64) -> f64 {
        let k = self.pieces.partition_point(|p| p.0 <= t);
        match (k.checked_sub(1).map(|i| self.pieces[i]), self.pieces.get(k)) {
            (Some((p, _, l)), Some(next)) if t >= p + l => next.1,
            _ => self.original_end(t),
        }
    }
}

/// Takes the `spans` (seconds, in order) out of `samples` and joins them with [`GAP`]
/// seconds of silence.
pub fn splice(samples: &[f32], spans: &[(f64, f64)]) -> Spliced {
    let rate = f64::from(SAMPLE_RATE);
    let gap = (GAP * rate) as usize;
    let mut out = Vec::new();
    let mut pieces = Vec::new();
    for (a, b) in spans {
        let from = ((a * rate) as usize).min(samples.len());
        let to = ((b * rate) as usize).clamp(from, samples.len());
        if to == from {
            continue;
        }
        if !out.is_empty() {
            out.resize(out.len() + gap, 0.0);
        }
        pieces.push((
            out.len() as f64 / rate,
            from as f64 / rate,
            (to - from) as f64 / rate,
        ));
        out.extend_from_slice(&samples[from..to]);
    }
    Spliced {
        samples: out,
        pieces,
    }
}

/// The loaded VAD model, kept for the next call.
#[derive(Default)]
pub struct Vad {
    loaded: Mutex<Option<(PathBuf, WhisperVadContext)>>,
}

impl Vad {
    /// The speech spans of `samples` (16 kHz mono), seconds.
    pub fn speech(
        &self,
        model: &Path,
        samples: &[f32],
        o: &VadOptions,
        threads: u32,
    ) -> Result<Vec<(f64, f64)>, TranscribeError> {
        let display = model.display().to_string();
        let mut loaded = self
            .loaded
            .lock()
            .map_err(|_| TranscribeError::Whisper("the VAD model lock is poisoned".into()))?;
        if loaded.as_ref().is_none_or(|(p, _)| p != model) {
            *loaded = None;
            mediaflow_asr_convert::check_silero_vad(model)
                .map_err(|e| TranscribeError::Invalid(e.to_string()))?;
            let mut params = WhisperVadContextParams::new();
            params.set_n_threads(threads as i32);
            let ctx =
                WhisperVadContext::new(&display, params).map_err(|e| TranscribeError::Load {
                    path: display.clone(),
                    message: e.to_string(),
                })?;
            *loaded = Some((model.to_path_buf(), ctx));
        }
        let Some((_, ctx)) = loaded.as_mut() else {
            return Ok(Vec::new());
        };
        let mut p = WhisperVadParams::new();
        p.set_threshold(o.threshold);
        p.set_min_silence_duration(o.min_silence_ms as i32);
        p.set_speech_pad(o.speech_pad_ms as i32);
        p.set_min_speech_duration(o.min_speech_ms as i32);
        let segments = ctx
            .segments_from_samples(p, samples)
            .map_err(|e| TranscribeError::Whisper(format!("voice activity detection: {e}")))?;
        Ok(segments
            .map(|s| (f64::from(s.start) / 100.0, f64::from(s.end) / 100.0))
            .filter(|(a, b)| b > a)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spliced_time_maps_back_to_the_original() {
        let rate = SAMPLE_RATE as usize;
        let samples: Vec<f32> = (0..10 * rate).map(|i| i as f32).collect();
        let s = splice(&samples, &[(1.0, 2.0), (5.0, 5.5), (9.5, 12.0)]);
        // 1 s + gap + 0.5 s + gap + 0.5 s (the file ends at 10 s).
        assert_eq!(
            s.samples.len(),
            (2.0 * rate as f64 + 2.0 * GAP * rate as f64) as usize
        );
        assert_eq!(s.samples[0], rate as f32);
        assert!((s.speech_seconds() - 2.0).abs() < 1e-9);
        // (spliced, original as an end, original as a start)
        for (spliced, end, start) in [
            (0.0, 1.0, 1.0),
            (0.5, 1.5, 1.5),
            (1.0, 2.0, 5.0),  // the first span's end is the gap's start
            (1.05, 2.0, 5.0), // in the silence after the first span
            (1.1, 5.0, 5.0),
            (1.35, 5.25, 5.25),
            (1.7, 9.5, 9.5),
            (2.2, 10.0, 10.0),
            (99.0, 10.0, 10.0),
        ] {
            let (e, a) = (s.original_end(spliced), s.original_start(spliced));
            assert!(
                (e - end).abs() < 1e-6 && (a - start).abs() < 1e-6,
                "{spliced} → end {e}, start {a} (want {end}, {start})"
            );
        }
        assert_eq!(s.spans(), vec![(1.0, 2.0), (5.0, 5.5), (9.5, 10.0)]);
        let none = splice(&samples, &[]);
        assert!(none.samples.is_empty());
        assert_eq!(none.original_end(3.0), 3.0);
        assert_eq!(none.original_start(3.0), 3.0);
    }
}

//! Word times. whisper.cpp gives each text token two estimates:
//! - `t0`/`t1` from its timestamp-token probabilities (cheap, but they drift by a word or
//!   two and bunch up around pauses);
//! - `t_dtw`, where the decoder's cross-attention *alignment heads* (the heads OpenAI found to
//!   follow the audio, per model size) place the token, by dynamic time warping over the
//!   attention weights (OpenAI's `word_timestamps` method). It needs the heads' attention,
//!   so flash attention is off in a model loaded for it, and one more decoder pass per
//!   30 s chunk.
//!
//! whisper.cpp's `t_dtw` for a token is where the path enters the next token's row: the
//! decoder's row for a token is the query that *predicts the token after it*, so `t_dtw`
//! is where the next token's sound begins (measured on words spoken apart: within a few
//! centiseconds of the next word's onset). A pause after a word is absorbed by it. So with
//! DTW a word starts at the `t_dtw` of the word before's last token (the first word of a
//! segment where its timestamp estimate puts it), and ends at its own last token's `t_dtw`, but no later
//! than twice the segment's median word length after its start (at most 1.4 s, as OpenAI
//! bounds it), so the pause after a word is not counted as the word.

use mediaflow_asr_convert::Hparams;
use whisper_rs::DtwModelPreset;

use crate::cues::Word;
use crate::subtitles::Segment;

/// How word times are found (`word_alignment:`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Deserialize,
    serde::Serialize,
    mediaflow_plugin_api::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum WordAlignment {
    /// The alignment heads (DTW), where whisper.cpp knows them for the model; else `tokens`.
    #[default]
    Dtw,
    /// whisper.cpp's timestamp-token estimates.
    Tokens,
}

/// The alignment heads whisper.cpp has for a model of this shape: OpenAI's, one set per
/// size. `None` for a shape no released Whisper has (a fine-tune with other layer counts).
/// large-v1 and large-v2 have the same shape; v2's heads are used for both.
pub fn preset(h: &Hparams) -> Option<DtwModelPreset> {
    use DtwModelPreset::*;
    let english = h.n_vocab == 51864;
    Some(match (h.n_audio_layer, h.n_text_layer, h.n_mels, english) {
        (4, 4, 80, true) => TinyEn,
        (4, 4, 80, false) => Tiny,
        (6, 6, 80, true) => BaseEn,
        (6, 6, 80, false) => Base,
        (12, 12, 80, true) => SmallEn,
        (12, 12, 80, false) => Small,
        (24, 24, 80, true) => MediumEn,
        (24, 24, 80, false) => Medium,
        (32, 32, 80, false) => LargeV2,
        (32, 32, 128, false) => LargeV3,
        (32, 4, 128, false) => LargeV3Turbo,
        _ => return None,
    })
}

/// A text token of a segment: its bytes (a piece of a UTF-8 word, a leading space where a
/// word starts) and its times in centiseconds (`t_dtw` is -1 without DTW).
pub struct Token {
    pub bytes: Vec<u8>,
    pub t0: i64,
    pub t1: i64,
    pub t_dtw: i64,
    pub p: f32,
}

/// The longest a word may last, seconds, whatever the median says.
const MAX_WORD: f64 = 1.4;

/// Appends the words of `segment`'s tokens to `out`: a word starts at a token that starts
/// with a space; its probability is its tokens' mean. With `dtw` it runs from the word
/// before's DTW boundary to its own (see the module docs), else over its tokens'
/// `t0`..`t1`; either way kept inside the segment and after the word before.
pub fn segment_words(
    segment: &Segment,
    tokens: impl Iterator<Item = Token>,
    dtw: bool,
    out: &mut Vec<Word>,
) {
    struct Raw {
        bytes: Vec<u8>,
        t0: i64,
        t1: i64,
        /// The last token's `t_dtw`: where the next word begins.
        t_dtw: i64,
        p: f32,
        n: u32,
    }
    let mut words: Vec<Raw> = Vec::new();
    for t in tokens {
        let starts = t.bytes.first() == Some(&b' ') || words.is_empty();
        if starts {
            words.push(Raw {
                bytes: t.bytes,
                t0: t.t0,
                t1: t.t1,
                t_dtw: t.t_dtw,
                p: t.p,
                n: 1,
            });
        } else if let Some(w) = words.last_mut() {
            w.bytes.extend_from_slice(&t.bytes);
            w.t1 = t.t1;
            w.t_dtw = t.t_dtw;
            w.p += t.p;
            w.n += 1;
        }
    }
    words.retain(|w| !String::from_utf8_lossy(&w.bytes).trim().is_empty());
    let Some(first_word) = words.first() else {
        return;
    };
    let (lo, hi) = (segment.start, segment.end.max(segment.start));
    let at = |t: i64, or: f64| if t >= 0 { t as f64 / 100.0 } else { or }.clamp(lo, hi);
    let times: Vec<(f64, f64)> = if dtw && words.iter().all(|w| w.t_dtw >= 0) {
        // Word k runs from boundary k to boundary k + 1. The first word has no DTW start:
        // its first token's timestamp estimate, within a longest word of its end.
        let ends: Vec<f64> = words.iter().map(|w| at(w.t_dtw, hi)).collect();
        let longest = longest_word(&ends);
        let first = at(first_word.t0, lo).max(ends[0] - longest).min(ends[0]);
        let bounds = [&[first][..], &ends].concat();
        bounds
            .windows(2)
            .map(|b| (b[0], b[1].min(b[0] + longest)))
            .collect()
    } else {
        words.iter().map(|w| (at(w.t0, lo), at(w.t1, hi))).collect()
    };
    for (w, (start, end)) in words.into_iter().zip(times) {
        let after = out.last().map_or(0.0, |w: &Word| w.end);
        let start = start.max(after);
        out.push(Word {
            word: String::from_utf8_lossy(&w.bytes).trim().to_owned(),
            start,
            end: end.max(start),
            probability: (f64::from(w.p) / f64::from(w.n) * 1000.0).round() / 1000.0,
        });
    }
}

/// Twice the median gap between word boundaries (the median word, pause included), at
/// most [`MAX_WORD`].
fn longest_word(bounds: &[f64]) -> f64 {
    let mut gaps: Vec<f64> = bounds
        .windows(2)
        .map(|p| p[1] - p[0])
        .filter(|g| *g > 0.0)
        .collect();
    if gaps.is_empty() {
        return MAX_WORD;
    }
    gaps.sort_by(f64::total_cmp);
    (2.0 * gaps[gaps.len() / 2]).min(MAX_WORD)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str, t0: i64, t1: i64, t_dtw: i64) -> Token {
        Token {
            bytes: text.as_bytes().to_vec(),
            t0,
            t1,
            t_dtw,
            p: 0.5,
        }
    }

    #[test]
    fn dtw_words_run_from_boundary_to_boundary_capped_at_twice_the_median_word() {
        let segment = Segment {
            start: 1.0,
            end: 9.0,
            text: "Hello world again".into(),
        };
        // Each token's `t_dtw` is where the next one starts; a long pause before "again".
        let tokens = || {
            vec![
                token(" Hel", 100, 150, 120),
                token("lo", 150, 200, 150),
                token(" world", 200, 300, 700),
                token(" again", 300, 900, 760),
            ]
            .into_iter()
        };
        let mut words = Vec::new();
        segment_words(&segment, tokens(), true, &mut words);
        let got: Vec<(&str, f64, f64)> = words
            .iter()
            .map(|w| (w.word.as_str(), w.start, w.end))
            .collect();
        // Boundaries 1.0, 1.5, 7.0, 7.6: gaps 0.5, 5.5, 0.6; the median word is 0.6 s, so a
        // word lasts at most 1.2 s.
        let want = [
            ("Hello", 1.0, 1.5),
            ("world", 1.5, 2.9),
            ("again", 7.0, 7.6),
        ];
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!(
                g.0 == w.0 && (g.1 - w.1).abs() < 1e-9 && (g.2 - w.2).abs() < 1e-9,
                "{got:?}"
            );
        }
        // Without DTW: t0 of the first token to t1 of the last.
        let mut words = Vec::new();
        segment_words(&segment, tokens(), false, &mut words);
        assert_eq!((words[0].start, words[0].end), (1.0, 2.0));
        assert_eq!((words[2].start, words[2].end), (3.0, 9.0));
    }

    #[test]
    fn a_token_without_a_dtw_time_falls_back_to_token_times() {
        let segment = Segment {
            start: 0.0,
            end: 2.0,
            text: "a b".into(),
        };
        let tokens = vec![token(" a", 0, 50, 40), token(" b", 50, 100, -1)].into_iter();
        let mut words = Vec::new();
        segment_words(&segment, tokens, true, &mut words);
        assert_eq!((words[1].start, words[1].end), (0.5, 1.0));
    }

    #[test]
    fn a_segment_without_words_adds_none() {
        let segment = Segment {
            start: 0.0,
            end: 2.0,
            text: String::new(),
        };
        for dtw in [true, false] {
            let mut words = Vec::new();
            segment_words(&segment, std::iter::empty(), dtw, &mut words);
            segment_words(
                &segment,
                vec![token(" ", 0, 10, 5)].into_iter(),
                dtw,
                &mut words,
            );
            assert!(words.is_empty());
        }
    }

    #[test]
    fn presets_follow_the_model_shape() {
        let h = |audio, text, mels, vocab| Hparams {
            n_vocab: vocab,
            n_audio_ctx: 1500,
            n_audio_state: 0,
            n_audio_head: 0,
            n_audio_layer: audio,
            n_text_ctx: 448,
            n_text_state: 0,
            n_text_head: 0,
            n_text_layer: text,
            n_mels: mels,
            ftype: 1,
        };
        assert!(matches!(
            preset(&h(4, 4, 80, 51864)),
            Some(DtwModelPreset::TinyEn)
        ));
        assert!(matches!(
            preset(&h(6, 6, 80, 51865)),
            Some(DtwModelPreset::Base)
        ));
        assert!(matches!(
            preset(&h(32, 4, 128, 51866)),
            Some(DtwModelPreset::LargeV3Turbo)
        ));
        assert!(preset(&h(5, 3, 80, 51865)).is_none());
    }
}

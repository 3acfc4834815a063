//! Audio of any length a window at a time: the stream is read a few minutes at a time,
//! each window is cut at its quietest moment near the end (never mid-word), has its speech
//! found and transcribed, and its times moved to the file's own; the rest is carried into
//! the next window. Memory stays flat however long the file is: one window of samples, the
//! model and whisper.cpp's state.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use crate::audio::{SampleSource, SAMPLE_RATE};
use crate::transcribe::{transcribe, Models, Progress, Settings, TranscribeError, Transcript};

/// Seconds of audio transcribed at a time (`MEDIAFLOW_ASR_WINDOW_SECONDS` to change it;
/// at least 60).
pub const WINDOW_SECONDS: u32 = 300;

/// The part of a window's progress that reading (decoding and resampling) it counts for.
const READING: f64 = 0.3;

/// The last this-many seconds of a window are searched for the quietest half second to
/// cut at.
const CUT_SEARCH_SECONDS: u32 = 30;

fn window_samples() -> usize {
    let seconds = std::env::var("MEDIAFLOW_ASR_WINDOW_SECONDS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(WINDOW_SECONDS)
        .max(60);
    seconds as usize * SAMPLE_RATE as usize
}

/// Where to cut `samples` at or after `from`: the middle of the quietest half second
/// (lowest energy) that starts there.
pub fn quiet_cut(samples: &[f32], from: usize) -> usize {
    const FRAME: usize = SAMPLE_RATE as usize / 100;
    const SPAN: usize = 50;
    if from >= samples.len() {
        return samples.len();
    }
    let energy: Vec<f64> = samples[from..]
        .chunks(FRAME)
        .map(|f| f.iter().map(|s| f64::from(*s) * f64::from(*s)).sum())
        .collect();
    if energy.len() <= SPAN {
        return from + (samples.len() - from) / 2;
    }
    let mut sum: f64 = energy[..SPAN].iter().sum();
    let (mut best, mut best_sum) = (0, sum);
    for i in 1..=energy.len() - SPAN {
        sum += energy[i + SPAN - 1] - energy[i - 1];
        if sum < best_sum - 1e-9 {
            (best, best_sum) = (i, sum);
        }
    }
    (from + (best + SPAN / 2) * FRAME).min(samples.len())
}

/// One call: loads the model (kept in `models`) and transcribes everything `source` holds,
/// a window at a time. With a VAD model, only the speech it finds is transcribed and every
/// time is mapped back to the file's own; `vad` given only by default (the step leaves
/// `vad:` unset) is not used for audio of 30 s or less.
#[allow(clippy::too_many_arguments)]
pub fn run(
    models: &Models,
    model: &Path,
    vad: Option<&Path>,
    source: &mut dyn SampleSource,
    s: &Settings,
    progress: Progress,
    log: &dyn Fn(&str),
    abort: impl Fn() -> bool + Clone + 'static,
) -> Result<Transcript, TranscribeError> {
    let model = models.get(model, s.wants_dtw(), log)?;
    let ctx = model.ctx.clone();
    let window = window_samples();
    let search = CUT_SEARCH_SECONDS as usize * SAMPLE_RATE as usize;
    let total = source.total_seconds();
    let progress = Rc::new(RefCell::new(progress));
    let mut settings = s.clone();
    let mut out = Transcript::empty(&ctx);
    let (mut buf, mut ended, mut offset) = (Vec::with_capacity(window), false, 0usize);
    let (mut vad, mut stretches, mut speech) = (vad, 0usize, 0.0f64);
    let mut first = true;
    // Progress never goes back: reading a window counts for its first `READING` part.
    let reported = Rc::new(RefCell::new(0.0f32));
    let report = {
        let (progress, reported) = (progress.clone(), reported.clone());
        move |done: f32, what: Option<&str>| {
            let mut last = reported.borrow_mut();
            if done >= *last || what.is_some() {
                *last = last.max(done);
                (progress.borrow_mut())(*last, what);
            }
        }
    };
    let whole = move |done: f64| -> f32 {
        let whole = total.unwrap_or(done + 2.0 * window as f64 / f64::from(SAMPLE_RATE));
        (done / whole.max(1e-9)).clamp(0.0, 0.99) as f32
    };
    let piece_samples = 30 * SAMPLE_RATE as usize;
    loop {
        let start = offset as f64 / f64::from(SAMPLE_RATE);
        while buf.len() < window && !ended {
            let want = (window - buf.len()).min(piece_samples);
            ended = source.read(&mut buf, want)? == 0;
            let read = buf.len() as f64 / f64::from(SAMPLE_RATE);
            report(whole(start + READING * read), None);
            if abort() {
                return Err(TranscribeError::Cancelled);
            }
        }
        if abort() {
            return Err(TranscribeError::Cancelled);
        }
        if first && ended && s.vad.is_none() && buf.len() as f64 <= 30.0 * SAMPLE_RATE as f64 {
            vad = None;
        }
        let cut = if ended {
            buf.len()
        } else {
            quiet_cut(&buf, buf.len().saturating_sub(search))
        };
        let length = cut as f64 / f64::from(SAMPLE_RATE);
        // The fraction done at `pct` of this window's transcription.
        let fraction = move |pct: f64| {
            whole(start + length * (READING + (1.0 - READING) * pct.clamp(0.0, 1.0)))
        };
        let piece = &buf[..cut];
        let spliced = match vad {
            Some(vad) => {
                if first {
                    report(fraction(0.0), Some("detecting speech"));
                }
                let threads = s.threads.unwrap_or_else(crate::transcribe::default_threads);
                let spans = models.vad.speech(vad, piece, &s.vad_options(), threads)?;
                stretches += spans.len();
                let spliced = crate::vad::splice(piece, &spans);
                speech += spliced.speech_seconds();
                Some(spliced)
            }
            None => None,
        };
        if first {
            report(fraction(0.0), Some("transcribing"));
        }
        let input = spliced.as_ref().map_or(piece, |sp| &sp.samples[..]);
        if !input.is_empty() {
            let report = report.clone();
            let percent = Box::new(move |pct: i32| report(fraction(f64::from(pct) / 100.0), None));
            let mut t = transcribe(&model, input, &settings, percent, abort.clone())?;
            if let Some(sp) = &spliced {
                t.map_times(sp);
            }
            t.shift(start);
            if !t.segments.is_empty() {
                if s.language == "auto" && ctx.is_multilingual() && !t.language.is_empty() {
                    settings.language = t.language.clone();
                }
                out.language = t.language;
            }
            out.segments.extend(t.segments);
            out.words.extend(t.words);
        }
        report(fraction(1.0), None);
        buf.drain(..cut);
        offset += cut;
        first = false;
        if ended && buf.is_empty() {
            break;
        }
    }
    let seconds = offset as f64 / f64::from(SAMPLE_RATE);
    if vad.is_some() {
        log(&format!(
            "voice activity: {stretches} stretch(es) of speech, {speech:.1} s of {seconds:.1} s transcribed"
        ));
        out.speech_seconds = Some(speech);
    }
    out.audio_seconds = seconds;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_fall_in_the_quietest_half_second() {
        let rate = SAMPLE_RATE as usize;
        // Loud everywhere but a 0.6 s pause at 7.2 s.
        let samples: Vec<f32> = (0..10 * rate)
            .map(|i| {
                let t = i as f64 / rate as f64;
                if (7.2..7.8).contains(&t) {
                    0.001
                } else {
                    (t * 1300.0).sin() as f32 * 0.4
                }
            })
            .collect();
        let cut = quiet_cut(&samples, 2 * rate) as f64 / rate as f64;
        assert!((7.2..7.8).contains(&cut), "{cut}");
        // Nothing to search: the end.
        assert_eq!(quiet_cut(&samples, samples.len()), samples.len());
        // A pause before the search starts is not found.
        let cut = quiet_cut(&samples, 8 * rate);
        assert!(cut >= 8 * rate, "{cut}");
    }
}

//! Resampling to 16 kHz as the samples arrive: rubato's FFT resampler fed in fixed chunks,
//! its delay line dropped at the start and flushed at the end, so the output is exactly
//! as long as the input (in 16 kHz samples) however the input is cut into pieces.

use rubato::{FftFixedIn, Resampler};

use super::SAMPLE_RATE;

const CHUNK: usize = 1024;

/// A resampler from `rate` to 16 kHz that takes its input in pieces.
pub struct Resample {
    r: Option<FftFixedIn<f32>>,
    rate: u32,
    /// Input not yet resampled (less than one chunk after each `push`).
    input: Vec<f32>,
    /// Input samples taken in all.
    fed: u64,
    /// Output samples given out in all (after the delay line).
    given: u64,
    /// Output samples of the delay line still to drop.
    skip: usize,
}

impl Resample {
    pub fn new(rate: u32) -> Result<Self, String> {
        let r = if rate == SAMPLE_RATE {
            None
        } else {
            Some(
                FftFixedIn::<f32>::new(rate as usize, SAMPLE_RATE as usize, CHUNK, 2, 1)
                    .map_err(|e| format!("cannot resample from {rate} Hz: {e}"))?,
            )
        };
        let skip = r.as_ref().map_or(0, |r| r.output_delay());
        Ok(Resample {
            r,
            rate,
            input: Vec::new(),
            fed: 0,
            given: 0,
            skip,
        })
    }

    /// Resamples `mono` (at the source rate), appending what comes out to `out`.
    pub fn push(&mut self, mono: &[f32], out: &mut Vec<f32>) -> Result<(), String> {
        self.fed += mono.len() as u64;
        let Some(r) = self.r.as_mut() else {
            out.extend_from_slice(mono);
            self.given += mono.len() as u64;
            return Ok(());
        };
        self.input.extend_from_slice(mono);
        let mut pos = 0;
        while self.input.len() - pos >= r.input_frames_next() {
            let n = r.input_frames_next();
            let chunk = r
                .process(&[&self.input[pos..pos + n]], None)
                .map_err(|e| e.to_string())?;
            pos += n;
            Self::give(&mut self.skip, &mut self.given, &chunk[0], u64::MAX, out);
        }
        self.input.drain(..pos);
        Ok(())
    }

    /// The end of the input: resamples what is left and flushes the delay line, so that
    /// exactly `ceil(input × 16000 / rate)` samples have come out in all.
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), String> {
        let Some(r) = self.r.as_mut() else {
            return Ok(());
        };
        let expected = (self.fed * SAMPLE_RATE as u64).div_ceil(self.rate as u64);
        if !self.input.is_empty() {
            let chunk = r
                .process_partial(Some(&[&self.input[..]]), None)
                .map_err(|e| e.to_string())?;
            self.input.clear();
            Self::give(&mut self.skip, &mut self.given, &chunk[0], expected, out);
        }
        while self.given < expected {
            let chunk = r
                .process_partial::<&[f32]>(None, None)
                .map_err(|e| e.to_string())?;
            if chunk[0].is_empty() {
                break;
            }
            Self::give(&mut self.skip, &mut self.given, &chunk[0], expected, out);
        }
        Ok(())
    }

    /// Appends `chunk` to `out`, less the delay line's samples still to drop and anything
    /// past `limit` samples in all.
    fn give(skip: &mut usize, given: &mut u64, chunk: &[f32], limit: u64, out: &mut Vec<f32>) {
        let dropped = (*skip).min(chunk.len());
        *skip -= dropped;
        let room = limit.saturating_sub(*given).min(usize::MAX as u64) as usize;
        let take = &chunk[dropped..][..(chunk.len() - dropped).min(room)];
        out.extend_from_slice(take);
        *given += take.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, seconds: f32, hz: f32) -> Vec<f32> {
        (0..(rate as f32 * seconds) as usize)
            .map(|i| (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin() * 0.5)
            .collect()
    }

    fn resample_in_pieces(input: &[f32], rate: u32, piece: usize) -> Vec<f32> {
        let mut r = Resample::new(rate).unwrap();
        let mut out = Vec::new();
        for p in input.chunks(piece) {
            r.push(p, &mut out).unwrap();
        }
        r.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn resampling_keeps_length_and_pitch() {
        for rate in [8_000, 16_000, 22_050, 44_100, 48_000] {
            let out = resample_in_pieces(&sine(rate, 2.0, 440.0), rate, 4096);
            assert_eq!(out.len(), 32_000, "{rate} Hz");
            // Zero crossings of a 440 Hz tone over 2 s: about 1760.
            let crossings = out
                .windows(2)
                .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
                .count();
            assert!((1740..=1780).contains(&crossings), "{rate}: {crossings}");
            let peak = out[1000..31_000].iter().fold(0f32, |m, s| m.max(s.abs()));
            assert!((0.45..0.55).contains(&peak), "{rate}: peak {peak}");
        }
    }

    #[test]
    fn how_the_input_is_cut_up_does_not_change_the_output() {
        let input = sine(44_100, 3.3, 523.0);
        let whole = resample_in_pieces(&input, 44_100, input.len());
        assert_eq!(whole.len(), (input.len() * 16_000).div_ceil(44_100));
        for piece in [1, 577, 1024, 1152, 100_000] {
            assert_eq!(resample_in_pieces(&input, 44_100, piece), whole, "{piece}");
        }
    }
}

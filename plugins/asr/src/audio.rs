//! Any common audio file in, 16 kHz mono f32 out: symphonia decodes (WAV, FLAC, MP3,
//! Ogg/Vorbis, AIFF, M4A/AAC, the audio track of MP4), the channels are averaged, rubato
//! resamples.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use mediaflow_plugin_api::format_duration;
use rubato::{FftFixedIn, Resampler};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// whisper.cpp wants 16 kHz mono.
pub const SAMPLE_RATE: u32 = 16_000;

/// Why a file could not be turned into samples.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is empty (0 bytes)")]
    Empty { path: String },
    #[error("{path} is not audio in a format mediaflow can read ({reason})")]
    Unsupported { path: String, reason: String },
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("{path} holds no audio samples")]
    NoSamples { path: String },
    #[error("{path} is {length} long, over the step's `max_duration` of {limit}")]
    TooLong {
        path: String,
        length: String,
        limit: String,
    },
}

impl AudioError {
    pub fn code(&self) -> &'static str {
        match self {
            AudioError::Io { .. } => "io",
            AudioError::Empty { .. } => "empty_audio",
            AudioError::Unsupported { .. } => "unsupported_audio",
            AudioError::Corrupt { .. } => "corrupt_audio",
            AudioError::NoSamples { .. } => "empty_audio",
            AudioError::TooLong { .. } => "too_long",
        }
    }

    pub fn help(&self) -> Option<&'static str> {
        match self {
            AudioError::Unsupported { .. } => Some(
                "mediaflow reads WAV, FLAC, MP3, Ogg/Vorbis, AIFF and AAC (M4A/MP4); convert other formats first, e.g. `ffmpeg -i in.xyz out.flac`",
            ),
            AudioError::Corrupt { .. } => {
                Some("the file is damaged or truncated; export it again from the source")
            }
            AudioError::TooLong { .. } => {
                Some("raise the step's `max_duration:`, or cut the audio into parts")
            }
            _ => None,
        }
    }
}

/// Decoded audio: 16 kHz mono samples and what the file was.
#[derive(Debug)]
pub struct Decoded {
    pub samples: Vec<f32>,
    pub source_rate: u32,
    pub source_channels: usize,
    pub codec: String,
}

impl Decoded {
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / SAMPLE_RATE as f64
    }
}

/// Decodes `path` to 16 kHz mono. Errors call the file `label` (its name as the user knows
/// it); `hints` are file extensions or media types, if known. Audio longer than
/// `max_duration` is refused: by the length its header declares before decoding, and by
/// the samples decoded so far for a file whose header does not say.
pub fn load(
    path: &Path,
    label: &str,
    hints: &[&str],
    max_duration: Option<Duration>,
) -> Result<Decoded, AudioError> {
    let display = label.to_owned();
    let file = File::open(path).map_err(|source| AudioError::Io {
        path: display.clone(),
        source,
    })?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        return Err(AudioError::Empty { path: display });
    }
    let (mono, rate, channels, codec) = decode_mono(file, hints, &display, max_duration)?;
    if mono.is_empty() {
        return Err(AudioError::NoSamples { path: display });
    }
    let samples = resample(&mono, rate).map_err(|reason| AudioError::Corrupt {
        path: display.clone(),
        reason,
    })?;
    Ok(Decoded {
        samples,
        source_rate: rate,
        source_channels: channels,
        codec,
    })
}

fn decode_mono(
    file: File,
    hints: &[&str],
    display: &str,
    max_duration: Option<Duration>,
) -> Result<(Vec<f32>, u32, usize, String), AudioError> {
    let too_long = |seconds: f64, limit: Duration| AudioError::TooLong {
        path: display.to_owned(),
        length: format_duration(Duration::from_secs_f64(seconds.max(0.0))),
        limit: format_duration(limit),
    };
    let unsupported = |reason: String| AudioError::Unsupported {
        path: display.to_owned(),
        reason,
    };
    let corrupt = |reason: String| AudioError::Corrupt {
        path: display.to_owned(),
        reason,
    };
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    for h in hints {
        if h.contains('/') {
            hint.mime_type(h);
        } else if !h.is_empty() {
            hint.with_extension(h);
        }
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            mss,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| unsupported(e.to_string()))?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| unsupported("it has no audio track".into()))?;
    let track_id = track.id;
    let codec = symphonia::default::get_codecs()
        .get_codec(track.codec_params.codec)
        .map(|d| d.short_name.to_owned())
        .unwrap_or_else(|| "unknown".into());
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| unsupported(format!("no decoder for its codec: {e}")))?;
    let declared_frames = track.codec_params.n_frames.unwrap_or(0);
    let mut rate = track.codec_params.sample_rate.unwrap_or(0);
    let mut channels = track.codec_params.channels.map(|c| c.count()).unwrap_or(0);
    if let Some(limit) = max_duration.filter(|_| rate > 0 && declared_frames > 0) {
        let seconds = declared_frames as f64 / rate as f64;
        if seconds > limit.as_secs_f64() {
            return Err(too_long(seconds, limit));
        }
    }

    let mut mono: Vec<f32> = Vec::new();
    let mut buf: Option<SampleBuffer<f32>> = None;
    let (mut good, mut bad) = (0usize, 0usize);
    let mut last_error = String::new();
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break
            }
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => {
                // A container that breaks off after good audio is truncated: keep what was
                // read if there is enough of it, otherwise report it.
                if good == 0 {
                    return Err(corrupt(e.to_string()));
                }
                last_error = e.to_string();
                bad += 1;
                break;
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(decoded) => {
                let spec = *decoded.spec();
                rate = spec.rate;
                channels = spec.channels.count().max(1);
                let needed = decoded.capacity() as u64;
                let b = match &mut buf {
                    Some(b) if b.capacity() as u64 >= needed * channels as u64 => b,
                    _ => buf.insert(SampleBuffer::new(needed, spec)),
                };
                b.copy_interleaved_ref(decoded);
                let samples = b.samples();
                if channels == 1 {
                    mono.extend_from_slice(samples);
                } else {
                    let scale = 1.0 / channels as f32;
                    mono.extend(
                        samples
                            .chunks_exact(channels)
                            .map(|frame| frame.iter().sum::<f32>() * scale),
                    );
                }
                good += 1;
                if let Some(limit) = max_duration.filter(|_| rate > 0) {
                    let seconds = mono.len() as f64 / rate as f64;
                    if seconds > limit.as_secs_f64() {
                        return Err(too_long(seconds, limit));
                    }
                }
            }
            Err(SymphoniaError::DecodeError(e)) => {
                bad += 1;
                last_error = e.to_string();
            }
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break
            }
            Err(e) => return Err(corrupt(e.to_string())),
        }
    }
    if good == 0 && bad > 0 {
        return Err(corrupt(format!(
            "no packet could be decoded ({last_error})"
        )));
    }
    // A few bad frames are normal in real recordings; most of them bad is not.
    if bad > 0 && bad * 10 > good + bad {
        return Err(corrupt(format!(
            "{bad} of {} packets could not be decoded ({last_error})",
            good + bad
        )));
    }
    if rate == 0 {
        return Err(unsupported("it does not say its sample rate".into()));
    }
    // Frames the reader skipped (bad sync, checksums) or a file cut short: the header says
    // how long it is, so do not pass a fraction of it off as the whole.
    if declared_frames > 0 && (mono.len() as u64) * 10 < declared_frames * 9 {
        let secs = |n: u64| n as f64 / rate as f64;
        return Err(corrupt(format!(
            "only {:.1} s of its {:.1} s could be decoded{}",
            secs(mono.len() as u64),
            secs(declared_frames),
            if last_error.is_empty() {
                String::new()
            } else {
                format!(" ({last_error})")
            }
        )));
    }
    if mono.iter().any(|s| !s.is_finite()) {
        return Err(corrupt("it decodes to NaN or infinite samples".into()));
    }
    Ok((mono, rate, channels, codec))
}

/// Resamples mono audio from `rate` to 16 kHz.
fn resample(input: &[f32], rate: u32) -> Result<Vec<f32>, String> {
    if rate == SAMPLE_RATE {
        return Ok(input.to_vec());
    }
    const CHUNK: usize = 1024;
    let mut r = FftFixedIn::<f32>::new(rate as usize, SAMPLE_RATE as usize, CHUNK, 2, 1)
        .map_err(|e| format!("cannot resample from {rate} Hz: {e}"))?;
    let expected = (input.len() as u64 * SAMPLE_RATE as u64).div_ceil(rate as u64) as usize;
    let delay = r.output_delay();
    let mut out = Vec::with_capacity(expected + delay + r.output_frames_max());
    let mut pos = 0;
    while input.len() - pos >= r.input_frames_next() {
        let n = r.input_frames_next();
        let chunk = r
            .process(&[&input[pos..pos + n]], None)
            .map_err(|e| e.to_string())?;
        out.extend_from_slice(&chunk[0]);
        pos += n;
    }
    if pos < input.len() {
        let chunk = r
            .process_partial(Some(&[&input[pos..]]), None)
            .map_err(|e| e.to_string())?;
        out.extend_from_slice(&chunk[0]);
    }
    // Flush the resampler's delay line until every input sample has come out.
    while out.len() < expected + delay {
        let chunk = r
            .process_partial::<&[f32]>(None, None)
            .map_err(|e| e.to_string())?;
        if chunk[0].is_empty() {
            break;
        }
        out.extend_from_slice(&chunk[0]);
    }
    let end = (delay + expected).min(out.len());
    Ok(out[delay.min(end)..end].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, seconds: f32, hz: f32) -> Vec<f32> {
        (0..(rate as f32 * seconds) as usize)
            .map(|i| (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin() * 0.5)
            .collect()
    }

    #[test]
    fn resampling_keeps_length_and_pitch() {
        for rate in [8_000, 22_050, 44_100, 48_000] {
            let out = resample(&sine(rate, 2.0, 440.0), rate).unwrap();
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
    fn empty_and_garbage_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.wav");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(
            load(&empty, "empty.wav", &[], None),
            Err(AudioError::Empty { .. })
        ));
        let junk = dir.path().join("junk.mp3");
        std::fs::write(&junk, b"this is not audio at all, just text in a file").unwrap();
        let err = load(&junk, "junk.mp3", &["mp3"], None).unwrap_err();
        assert!(
            matches!(
                err,
                AudioError::Unsupported { .. } | AudioError::Corrupt { .. }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("junk.mp3"), "{err}");
    }
}

//! Any common audio file in, 16 kHz mono f32 out, as a stream: symphonia decodes (WAV,
//! FLAC, MP3, Ogg/Vorbis, AIFF, M4A/AAC, the audio track of MP4) a packet at a time, the
//! channels are averaged, rubato resamples.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use mediaflow_plugin_api::format_duration;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{Decoder, DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

mod resample;

use resample::Resample;

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

/// What an audio file is, as far as its header and the packets decoded so far say.
#[derive(Clone, Debug)]
pub struct Info {
    pub source_rate: u32,
    pub source_channels: usize,
    pub codec: String,
    /// The length the header declares, if it does.
    pub declared_seconds: Option<f64>,
}

/// Where 16 kHz mono samples come from, a piece at a time.
pub trait SampleSource: Send {
    /// Appends at most `want` samples to `out`; returns how many (0 at the end).
    fn read(&mut self, out: &mut Vec<f32>, want: usize) -> Result<usize, AudioError>;
    /// The whole length in seconds, if known before the end.
    fn total_seconds(&self) -> Option<f64>;
}

/// An audio file decoded and resampled to 16 kHz mono as it is read: only a packet's worth
/// of the source and the samples not yet taken are held, so a file of hours costs no more
/// memory than a file of minutes. Errors call the file by its label.
pub struct Stream {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    track_id: u32,
    display: String,
    max_duration: Option<Duration>,
    info: Info,
    declared_frames: u64,
    buf: Option<SampleBuffer<f32>>,
    /// Mono source-rate samples of the packet being resampled.
    mono: Vec<f32>,
    resample: Option<Resample>,
    /// 16 kHz samples decoded and not yet taken.
    ready: Vec<f32>,
    /// Source-rate frames decoded so far.
    frames: u64,
    good: usize,
    bad: usize,
    last_error: String,
    ended: bool,
}

impl Stream {
    /// Opens `path` and reads its header. `label` is the file's name as the user knows
    /// it; `hints` are file extensions or media types, if known. Audio longer than
    /// `max_duration` is refused: here, by the length its header declares, and while
    /// reading, once the samples decoded pass it for a file whose header does not say.
    pub fn open(
        path: &Path,
        label: &str,
        hints: &[&str],
        max_duration: Option<Duration>,
    ) -> Result<Self, AudioError> {
        let display = label.to_owned();
        let file = File::open(path).map_err(|source| AudioError::Io {
            path: display.clone(),
            source,
        })?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len == 0 {
            return Err(AudioError::Empty { path: display });
        }
        let unsupported = |reason: String| AudioError::Unsupported {
            path: display.clone(),
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
        let format = probed.format;
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
        let decoder = symphonia::default::get_codecs()
            .make(&track.codec_params, &DecoderOptions::default())
            .map_err(|e| unsupported(format!("no decoder for its codec: {e}")))?;
        let declared_frames = track.codec_params.n_frames.unwrap_or(0);
        let rate = track.codec_params.sample_rate.unwrap_or(0);
        let channels = track.codec_params.channels.map(|c| c.count()).unwrap_or(0);
        let declared_seconds =
            (rate > 0 && declared_frames > 0).then(|| declared_frames as f64 / rate as f64);
        let stream = Stream {
            format,
            decoder,
            track_id,
            display,
            max_duration,
            info: Info {
                source_rate: rate,
                source_channels: channels,
                codec,
                declared_seconds,
            },
            declared_frames,
            buf: None,
            mono: Vec::new(),
            resample: None,
            ready: Vec::new(),
            frames: 0,
            good: 0,
            bad: 0,
            last_error: String::new(),
            ended: false,
        };
        if let (Some(seconds), Some(limit)) = (declared_seconds, max_duration) {
            if seconds > limit.as_secs_f64() {
                return Err(stream.too_long(seconds, limit));
            }
        }
        Ok(stream)
    }

    /// The file's rate, channels and codec (from the packets once some are decoded).
    pub fn info(&self) -> &Info {
        &self.info
    }

    fn too_long(&self, seconds: f64, limit: Duration) -> AudioError {
        AudioError::TooLong {
            path: self.display.clone(),
            length: format_duration(Duration::from_secs_f64(seconds.max(0.0))),
            limit: format_duration(limit),
        }
    }

    fn corrupt(&self, reason: String) -> AudioError {
        AudioError::Corrupt {
            path: self.display.clone(),
            reason,
        }
    }

    /// Decodes the next packet into `ready`; false at the end of the file.
    fn decode_packet(&mut self) -> Result<bool, AudioError> {
        let packet = match self.format.next_packet() {
            Ok(p) => p,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(false)
            }
            Err(SymphoniaError::ResetRequired) => return Ok(false),
            Err(e) => {
                // A container that breaks off after good audio is truncated: keep what was
                // read if there is enough of it, otherwise report it.
                if self.good == 0 {
                    return Err(self.corrupt(e.to_string()));
                }
                self.last_error = e.to_string();
                self.bad += 1;
                return Ok(false);
            }
        };
        if packet.track_id() != self.track_id {
            return Ok(true);
        }
        let decoded = match self.decoder.decode(&packet) {
            Ok(decoded) => decoded,
            Err(SymphoniaError::DecodeError(e)) => {
                self.bad += 1;
                self.last_error = e.to_string();
                // Mostly bad from the start: say so now, not after hours of the rest.
                if self.bad >= 50 && self.bad * 10 > self.good + self.bad {
                    return Err(self.corrupt(format!(
                        "{} of the first {} packets could not be decoded ({e})",
                        self.bad,
                        self.good + self.bad
                    )));
                }
                return Ok(true);
            }
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(false)
            }
            Err(e) => return Err(self.corrupt(e.to_string())),
        };
        let spec = *decoded.spec();
        let channels = spec.channels.count().max(1);
        if self.resample.is_some() && spec.rate != self.info.source_rate {
            return Err(self.corrupt(format!(
                "its sample rate changes from {} Hz to {} Hz",
                self.info.source_rate, spec.rate
            )));
        }
        self.info.source_rate = spec.rate;
        self.info.source_channels = channels;
        let needed = decoded.capacity() as u64;
        let b = match &mut self.buf {
            Some(b) if b.capacity() as u64 >= needed * channels as u64 => b,
            buf => buf.insert(SampleBuffer::new(needed, spec)),
        };
        b.copy_interleaved_ref(decoded);
        let samples = b.samples();
        self.mono.clear();
        if channels == 1 {
            self.mono.extend_from_slice(samples);
        } else {
            let scale = 1.0 / channels as f32;
            self.mono.extend(
                samples
                    .chunks_exact(channels)
                    .map(|frame| frame.iter().sum::<f32>() * scale),
            );
        }
        if self.mono.iter().any(|s| !s.is_finite()) {
            return Err(self.corrupt("it decodes to NaN or infinite samples".into()));
        }
        self.good += 1;
        self.frames += self.mono.len() as u64;
        if let Some(limit) = self.max_duration.filter(|_| spec.rate > 0) {
            let seconds = self.frames as f64 / spec.rate as f64;
            if seconds > limit.as_secs_f64() {
                return Err(self.too_long(seconds, limit));
            }
        }
        if self.resample.is_none() {
            let r = Resample::new(spec.rate).map_err(|e| self.corrupt(e))?;
            self.resample = Some(r);
        }
        if let Some(r) = self.resample.as_mut() {
            r.push(&self.mono, &mut self.ready)
                .map_err(|e| AudioError::Corrupt {
                    path: self.display.clone(),
                    reason: e,
                })?;
        }
        Ok(true)
    }

    /// The end of the file: the checks on the whole, and the resampler's last samples.
    fn finish(&mut self) -> Result<(), AudioError> {
        let (good, bad) = (self.good, self.bad);
        let last_error = self.last_error.clone();
        if good == 0 && bad > 0 {
            return Err(self.corrupt(format!("no packet could be decoded ({last_error})")));
        }
        // A few bad frames are normal in real recordings; most of them bad is not.
        if bad > 0 && bad * 10 > good + bad {
            return Err(self.corrupt(format!(
                "{bad} of {} packets could not be decoded ({last_error})",
                good + bad
            )));
        }
        let rate = self.info.source_rate;
        if rate == 0 {
            return Err(AudioError::Unsupported {
                path: self.display.clone(),
                reason: "it does not say its sample rate".into(),
            });
        }
        // Frames the reader skipped (bad sync, checksums) or a file cut short: the header
        // says how long it is, so do not pass a fraction of it off as the whole.
        if self.declared_frames > 0 && self.frames * 10 < self.declared_frames * 9 {
            let secs = |n: u64| n as f64 / rate as f64;
            return Err(self.corrupt(format!(
                "only {:.1} s of its {:.1} s could be decoded{}",
                secs(self.frames),
                secs(self.declared_frames),
                if last_error.is_empty() {
                    String::new()
                } else {
                    format!(" ({last_error})")
                }
            )));
        }
        if self.frames == 0 {
            return Err(AudioError::NoSamples {
                path: self.display.clone(),
            });
        }
        if let Some(r) = self.resample.as_mut() {
            r.finish(&mut self.ready).map_err(|e| AudioError::Corrupt {
                path: self.display.clone(),
                reason: e,
            })?;
        }
        Ok(())
    }
}

impl SampleSource for Stream {
    fn read(&mut self, out: &mut Vec<f32>, want: usize) -> Result<usize, AudioError> {
        while self.ready.len() < want && !self.ended {
            if !self.decode_packet()? {
                self.ended = true;
                self.finish()?;
            }
        }
        let n = want.min(self.ready.len());
        out.extend(self.ready.drain(..n));
        Ok(n)
    }

    fn total_seconds(&self) -> Option<f64> {
        self.info.declared_seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens `path` and reads it to the end.
    fn load(path: &Path, label: &str, hints: &[&str]) -> Result<(), AudioError> {
        let mut stream = Stream::open(path, label, hints, None)?;
        while stream.read(&mut Vec::new(), 1 << 20)? > 0 {}
        Ok(())
    }

    #[test]
    fn empty_and_garbage_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.wav");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(
            load(&empty, "empty.wav", &[]),
            Err(AudioError::Empty { .. })
        ));
        let junk = dir.path().join("junk.mp3");
        std::fs::write(&junk, b"this is not audio at all, just text in a file").unwrap();
        let err = load(&junk, "junk.mp3", &["mp3"]).unwrap_err();
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

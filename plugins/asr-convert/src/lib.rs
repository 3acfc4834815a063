//! Converts a CTranslate2 Whisper model (faster-whisper's `model.bin` + `vocabulary.txt`)
//! to whisper.cpp's ggml format, and checks ggml files before whisper.cpp loads them.
//! Pure Rust: `mediaflow models pull` runs the conversion without any C++.
//!
//! - `ct2.rs`: reading `model.bin` and the GPT-2 byte-level `vocabulary.txt`;
//! - `tensors.rs`: CT2 variables → whisper.cpp tensors (fused attention weights split, each
//!   tensor at the type whisper.cpp reads);
//! - `mel.rs`: the 80×201 Slaney mel filterbank (librosa, sr 16000, n_fft 400);
//! - `write.rs`: the ggml file ([`convert_ct2_whisper`], [`convert_ct2_whisper_as`] for
//!   quantised weights: q8_0, q5_1, q5_0, q4_0 through `mediaflow-ggml-blocks`);
//! - `requantize.rs`: a ggml model on disk rewritten at another weight type
//!   ([`requantize_ggml`]);
//! - `silero.rs`: Silero VAD v6 (ONNX, as faster-whisper ships it) → whisper.cpp's VAD
//!   model file ([`convert_silero_vad`]);
//! - `check.rs`: [`is_ggml`] and [`check_ggml`], used by `mediaflow-asr`.
//!
//! [`Ct2Whisper`] is the [`Converter`] that catalog entries with `convert.from: ct2-whisper`
//! (f16 weights) or `ct2-whisper-q8_0` / `-q5_1` / `-q5_0` need; whoever opens a
//! [`mediaflow_models::ModelStore`] that pulls registers them.

mod check;
mod ct2;
mod mel;
mod requantize;
mod silero;
mod tensors;
mod write;

use std::path::Path;

use mediaflow_models::{ConvertError, Converter};

pub use check::{check_ggml, is_ggml, Hparams};
pub use mediaflow_ggml_blocks::BlockType;
pub use mel::mel_filters;
pub use requantize::{requantize_ggml, Requantized};
pub use silero::{check_silero_vad, convert_silero_vad};
pub use write::{convert_ct2_whisper, convert_ct2_whisper_as};

/// whisper.cpp's file magic, `ggml` as a little-endian u32.
const GGML_MAGIC: u32 = 0x6767_6d6c;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a CTranslate2 Whisper model: {reason}")]
    Format { path: String, reason: String },
    #[error("{path} is not a usable whisper.cpp model: {reason}")]
    Ggml { path: String, reason: String },
    #[error("{path} is not a usable whisper.cpp VAD model: {reason}")]
    Vad { path: String, reason: String },
}

impl From<Error> for ConvertError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::Io { source, .. } => ConvertError::with_source(message, source),
            Error::Format { .. } | Error::Ggml { .. } | Error::Vad { .. } => {
                ConvertError::new(message)
            }
        }
    }
}

/// `ct2-whisper` (f16 weights) and `ct2-whisper-q8_0`, `-q5_1`, `-q5_0`: CTranslate2 Whisper
/// weights plus their vocabulary → a whisper.cpp ggml file ([`convert_ct2_whisper_as`]).
#[derive(Clone, Copy, Debug)]
pub struct Ct2Whisper {
    weights: BlockType,
    name: &'static str,
}

impl Ct2Whisper {
    /// The name of the f16 converter in `convert.from`.
    pub const NAME: &'static str = "ct2-whisper";
    pub const F16: Ct2Whisper = Ct2Whisper {
        weights: BlockType::F16,
        name: "ct2-whisper",
    };
    pub const Q8_0: Ct2Whisper = Ct2Whisper {
        weights: BlockType::Q8_0,
        name: "ct2-whisper-q8_0",
    };
    pub const Q5_1: Ct2Whisper = Ct2Whisper {
        weights: BlockType::Q5_1,
        name: "ct2-whisper-q5_1",
    };
    pub const Q5_0: Ct2Whisper = Ct2Whisper {
        weights: BlockType::Q5_0,
        name: "ct2-whisper-q5_0",
    };
    /// Every variant, for registering them all.
    pub const ALL: [Ct2Whisper; 4] = [Self::F16, Self::Q8_0, Self::Q5_1, Self::Q5_0];
}

impl Converter for Ct2Whisper {
    fn name(&self) -> &str {
        self.name
    }

    fn convert(
        &self,
        input: &Path,
        vocabulary: Option<&Path>,
        out: &Path,
    ) -> Result<(), ConvertError> {
        let vocabulary = vocabulary.ok_or_else(|| {
            ConvertError::new(format!(
                "the `{}` converter needs the model's vocabulary.txt (`convert.vocabulary` in the catalog)",
                self.name
            ))
        })?;
        Ok(convert_ct2_whisper_as(
            input,
            vocabulary,
            out,
            self.weights,
        )?)
    }
}

/// `onnx-silero-vad`: `silero_vad_v6.onnx` → whisper.cpp's Silero VAD model file
/// ([`convert_silero_vad`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct SileroVad;

impl SileroVad {
    pub const NAME: &'static str = "onnx-silero-vad";
}

impl Converter for SileroVad {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn convert(
        &self,
        input: &Path,
        _vocabulary: Option<&Path>,
        out: &Path,
    ) -> Result<(), ConvertError> {
        Ok(convert_silero_vad(input, out)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_converter_needs_a_vocabulary_and_names_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.bin");
        let c: &dyn Converter = &Ct2Whisper::F16;
        assert_eq!(c.name(), "ct2-whisper");
        let err = c.convert(&dir.path().join("model.bin"), None, &out);
        assert!(err.unwrap_err().to_string().contains("vocabulary"));

        let model = dir.path().join("model.bin");
        let vocabulary = dir.path().join("vocabulary.txt");
        std::fs::write(&vocabulary, "a\n<|endoftext|>\n").unwrap();
        let err = c.convert(&model, Some(&vocabulary), &out).unwrap_err();
        assert!(
            err.to_string().starts_with(&model.display().to_string()),
            "{err}"
        );
        assert!(std::error::Error::source(&err).is_some());

        std::fs::write(&model, [6, 0, 0, 0, 2, 0, b'X', 0]).unwrap();
        let err = c
            .convert(&model, Some(&vocabulary), &out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a CTranslate2 Whisper model"), "{err}");
        assert!(err.contains("the model spec is `X`"), "{err}");
    }
}

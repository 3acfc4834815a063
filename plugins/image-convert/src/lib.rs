//! Converts the EfficientNet-Lite0 image classifier from a legacy PyTorch checkpoint to
//! ONNX, in Rust, when `mediaflow models pull` downloads it: no Python, no torch, no
//! protobuf library.
//!
//! - `pickle.rs`: a minimal pickle reader that accepts exactly what legacy checkpoints
//!   contain and never imports or calls anything;
//! - `torch.rs`: the legacy checkpoint layout → named float32 tensors, through each
//!   tensor's offset and strides ([`Checkpoint`]);
//! - `efficientnet.rs`: the EfficientNet-Lite0 graph, BatchNorm folded into the convs
//!   ([`build`]);
//! - `onnx.rs`: a minimal ONNX `ModelProto` writer (opset 13).
//!
//! [`TorchEfficientNetLite`] is the [`Converter`] that catalog entries with
//! `convert.from: torch-efficientnet-lite` need; whoever opens a
//! [`mediaflow_models::ModelStore`] that pulls registers it.

mod efficientnet;
mod onnx;
mod pickle;
mod torch;

use std::path::Path;

use mediaflow_models::{ConvertError, Converter};

pub use efficientnet::{build, fold_batch_norm, BatchNorm, Padding};
pub use pickle::PickleError;
pub use torch::{Checkpoint, CheckpointError, Tensor};

/// What the ONNX file names as its producer.
const PRODUCER: &str = "mediaflow-image-convert";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an EfficientNet-Lite0 checkpoint this converter reads: {error}")]
    Checkpoint {
        path: String,
        error: CheckpointError,
    },
}

impl From<Error> for ConvertError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::Io { source, .. } => ConvertError::with_source(message, source),
            Error::Checkpoint { .. } => ConvertError::new(message),
        }
    }
}

/// The ONNX file for the EfficientNet-Lite0 checkpoint in `data`, padded as `padding` says.
pub fn convert_bytes(data: Vec<u8>, padding: Padding) -> Result<Vec<u8>, CheckpointError> {
    let checkpoint = Checkpoint::parse(data)?;
    let graph = build(&checkpoint, padding)?;
    Ok(onnx::model_bytes(&graph, PRODUCER))
}

/// Converts the legacy PyTorch checkpoint `input` to the ONNX classifier `out`
/// (TensorFlow SAME padding, see [`Padding`]).
pub fn convert_efficientnet_lite(input: &Path, out: &Path) -> Result<(), Error> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| Error::Io { path, source }
    };
    let data = std::fs::read(input).map_err(io(input))?;
    let bytes = convert_bytes(data, Padding::TfSame).map_err(|error| Error::Checkpoint {
        path: input.display().to_string(),
        error,
    })?;
    std::fs::write(out, bytes).map_err(io(out))
}

/// `torch-efficientnet-lite`: a legacy PyTorch EfficientNet-Lite0 checkpoint → an ONNX
/// classifier with probabilities out ([`convert_efficientnet_lite`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct TorchEfficientNetLite;

impl TorchEfficientNetLite {
    /// The name catalog entries give in `convert.from`.
    pub const NAME: &'static str = "torch-efficientnet-lite";
}

impl Converter for TorchEfficientNetLite {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn convert(
        &self,
        input: &Path,
        _vocabulary: Option<&Path>,
        out: &Path,
    ) -> Result<(), ConvertError> {
        Ok(convert_efficientnet_lite(input, out)?)
    }
}

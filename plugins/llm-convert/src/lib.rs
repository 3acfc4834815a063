//! Requantises a GGUF language model to one block type that llama.cpp's CPU matrix kernels
//! run fast for many rows at once, so that continuous batching pays: `q8_0` (tinyBLAS) or
//! `q4_0` (repacked 8×8 on AVX2). Pure Rust: `mediaflow models pull` runs it without C++.
//!
//! - `gguf.rs`: the container (header, metadata kept as it was, tensor table, aligned data);
//! - ggml's block formats (read to f32, q8_0 and q4_0 written) come from
//!   `mediaflow-ggml-blocks`, which the Whisper converter shares.
//!
//! [`GgufRequantize`] is the [`Converter`] that catalog entries with `convert.from:
//! gguf-q8_0` (or `gguf-q4_0`) need; whoever opens a [`mediaflow_models::ModelStore`] that
//! pulls registers it.

mod gguf;

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use mediaflow_models::{ConvertError, Converter};

use mediaflow_ggml_blocks as blocks;
pub use mediaflow_ggml_blocks::BlockType;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a GGUF model the requantiser can read: {reason}")]
    Format { path: String, reason: String },
}

impl From<Error> for ConvertError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::Io { source, .. } => ConvertError::with_source(message, source),
            Error::Format { .. } => ConvertError::new(message),
        }
    }
}

/// What became of each tensor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requantized {
    pub converted: usize,
    pub kept: usize,
}

/// The type tensor `t` is written in: `target`, unless it is a float tensor (norms,
/// biases), already `target`, has rows that are not whole blocks, or is a token embedding
/// table that is only looked up (the model has its own `output.weight`).
fn written_as(t: &gguf::TensorInfo, target: BlockType, has_output: bool) -> BlockType {
    let float = matches!(t.ty, BlockType::F32 | BlockType::F16 | BlockType::BF16);
    let row = t.dims.first().copied().unwrap_or(0);
    let whole = row.is_multiple_of(target.block().0 as u64);
    let lookup_only = t.name == "token_embd.weight" && has_output;
    if float || !whole || lookup_only {
        t.ty
    } else {
        target
    }
}

/// Writes `input` to `out` with its quantised weight tensors in `target` (q8_0 or q4_0),
/// its metadata as it was.
pub fn requantize(input: &Path, out: &Path, target: BlockType) -> Result<Requantized, Error> {
    let path = input.display().to_string();
    let io = |p: &Path| {
        let path = p.display().to_string();
        move |source| Error::Io { path, source }
    };
    if !matches!(target, BlockType::Q8_0 | BlockType::Q4_0) {
        return Err(Error::Format {
            path,
            reason: format!("cannot write {}: only q8_0 and q4_0", target.name()),
        });
    }
    let mut r = BufReader::new(File::open(input).map_err(io(input))?);
    let g = gguf::read(&mut r, &path)?;
    let has_output = g.tensors.iter().any(|t| t.name == "output.weight");
    let mut table = Vec::with_capacity(g.tensors.len());
    let mut offset = 0;
    for t in &g.tensors {
        let ty = written_as(t, target, has_output);
        let bytes = ty.bytes(t.elements()).ok_or_else(|| Error::Format {
            path: path.clone(),
            reason: format!(
                "tensor `{}` ({:?}) is not whole {} blocks",
                t.name,
                t.dims,
                ty.name()
            ),
        })?;
        table.push(gguf::TensorInfo {
            ty,
            offset,
            ..t.clone()
        });
        offset = gguf::align(offset + bytes, g.alignment);
    }
    let mut w = BufWriter::new(File::create(out).map_err(io(out))?);
    gguf::write_header(&mut w, &g, &table).map_err(io(out))?;
    let mut done = Requantized::default();
    let mut written = 0u64;
    let (mut values, mut data) = (Vec::new(), Vec::new());
    for (t, new) in g.tensors.iter().zip(&table) {
        let raw = g.tensor_bytes(&mut r, t, &path)?;
        let bytes = if new.ty == t.ty {
            done.kept += 1;
            raw
        } else {
            values.clear();
            data.clear();
            blocks::dequantize(t.ty, &raw, &mut values);
            blocks::quantize(target, &values, &mut data);
            done.converted += 1;
            std::mem::take(&mut data)
        };
        w.write_all(&vec![0u8; (new.offset - written) as usize])
            .map_err(io(out))?;
        w.write_all(&bytes).map_err(io(out))?;
        written = new.offset + bytes.len() as u64;
    }
    let end = gguf::align(written, g.alignment);
    w.write_all(&vec![0u8; (end - written) as usize])
        .map_err(io(out))?;
    w.flush().map_err(io(out))?;
    Ok(done)
}

/// `gguf-q8_0` / `gguf-q4_0`: a GGUF model requantised ([`requantize`]).
#[derive(Clone, Copy, Debug)]
pub struct GgufRequantize {
    target: BlockType,
}

impl GgufRequantize {
    pub const Q8_0: GgufRequantize = GgufRequantize {
        target: BlockType::Q8_0,
    };
    pub const Q4_0: GgufRequantize = GgufRequantize {
        target: BlockType::Q4_0,
    };
}

impl Converter for GgufRequantize {
    fn name(&self) -> &str {
        match self.target {
            BlockType::Q4_0 => "gguf-q4_0",
            _ => "gguf-q8_0",
        }
    }

    fn convert(
        &self,
        input: &Path,
        _vocabulary: Option<&Path>,
        out: &Path,
    ) -> Result<(), ConvertError> {
        requantize(input, out, self.target)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;

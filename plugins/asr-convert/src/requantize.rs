//! Requantising a whisper.cpp ggml model that is already on disk (`mediaflow models pull
//! NAME --quantize TYPE`, `mediaflow models add … --quantize TYPE`): the header, mel
//! filters and vocabulary are copied, the weight matrices rewritten at the new type, the
//! rest kept. One tensor is in memory at a time.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use mediaflow_ggml_blocks::{dequantize, BlockType};

use crate::write::{encode, put_tensor, tensor_type, weights_of, writable_ftype};
use crate::{check_ggml, Error, GGML_MAGIC};

/// What became of each tensor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requantized {
    pub converted: usize,
    pub kept: usize,
}

/// Writes the whisper.cpp model `input` (f32 or f16 weights) to `out` with its weight
/// matrices at `weights` (q8_0, q5_1, q5_0, q4_0, or f16).
pub fn requantize_ggml(input: &Path, out: &Path, weights: BlockType) -> Result<Requantized, Error> {
    let path = input.display().to_string();
    let target_ftype = writable_ftype(weights, &path)?;
    check_ggml(input)?;
    let bad = |reason: String| Error::Ggml {
        path: path.clone(),
        reason,
    };
    let read_io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    let write_io = |source| Error::Io {
        path: out.display().to_string(),
        source,
    };
    let mut r = BufReader::with_capacity(1 << 20, File::open(input).map_err(read_io)?);
    let mut w = BufWriter::with_capacity(1 << 20, File::create(out).map_err(write_io)?);
    let i32_at = |r: &mut BufReader<File>| -> Result<i32, Error> {
        let mut b = [0u8; 4];
        r.read_exact(&mut b).map_err(read_io)?;
        Ok(i32::from_le_bytes(b))
    };
    let put = |w: &mut BufWriter<File>, v: i32| w.write_all(&v.to_le_bytes()).map_err(write_io);

    if i32_at(&mut r)? as u32 != GGML_MAGIC {
        return Err(bad("it does not start with the ggml magic".into()));
    }
    put(&mut w, GGML_MAGIC as i32)?;
    let mut hparams = [0i32; 11];
    for h in &mut hparams {
        *h = i32_at(&mut r)?;
    }
    let source = weights_of(hparams[10]).ok_or_else(|| {
        bad(format!(
            "its weight type (ftype {}) is unknown",
            hparams[10]
        ))
    })?;
    if !matches!(source, BlockType::F32 | BlockType::F16) {
        return Err(bad(format!(
            "its weights are already {}; requantise from an f16 (or f32) model, not from a quantised one",
            source.name()
        )));
    }
    hparams[10] = target_ftype;
    for h in hparams {
        put(&mut w, h)?;
    }
    // Mel filters and vocabulary, as they are (`check_ggml` has walked them).
    let (n_mel, n_fft) = (i32_at(&mut r)?, i32_at(&mut r)?);
    put(&mut w, n_mel)?;
    put(&mut w, n_fft)?;
    copy(&mut r, &mut w, 4 * n_mel as u64 * n_fft as u64, &path, out)?;
    let n_vocab = i32_at(&mut r)?;
    put(&mut w, n_vocab)?;
    for _ in 0..n_vocab {
        let n = i32_at(&mut r)?;
        put(&mut w, n)?;
        copy(&mut r, &mut w, n.max(0) as u64, &path, out)?;
    }

    let mut done = Requantized::default();
    let (mut raw, mut values, mut data) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        let mut first = [0u8; 4];
        match r.read(&mut first).map_err(read_io)? {
            0 => break,
            n => r.read_exact(&mut first[n..]).map_err(read_io)?,
        }
        let n_dims = i32::from_le_bytes(first);
        let name_len = i32_at(&mut r)?;
        let ttype = i32_at(&mut r)?;
        let mut shape = (0..n_dims)
            .map(|_| i32_at(&mut r).map(|d| d.max(0) as usize))
            .collect::<Result<Vec<_>, _>>()?;
        shape.reverse();
        let mut name = vec![0u8; name_len.max(0) as usize];
        r.read_exact(&mut name).map_err(read_io)?;
        let name = String::from_utf8_lossy(&name).into_owned();
        let elements: usize = shape.iter().product();
        let ty = BlockType::from_id(ttype as u32)
            .filter(|_| ttype >= 0)
            .ok_or_else(|| bad(format!("tensor `{name}` has an unknown type {ttype}")))?;
        let bytes = ty
            .bytes(elements as u64)
            .ok_or_else(|| bad(format!("tensor `{name}` is not whole {} blocks", ty.name())))?;
        raw.resize(bytes as usize, 0);
        r.read_exact(&mut raw).map_err(read_io)?;
        let new = tensor_type(&name, &shape, weights).map_err(&bad)?;
        if new == ty {
            put_tensor(&mut w, &name, &shape, ty, &raw).map_err(write_io)?;
            done.kept += 1;
        } else {
            values.clear();
            data.clear();
            dequantize(ty, &raw, &mut values);
            encode(new, &values, &mut data);
            put_tensor(&mut w, &name, &shape, new, &data).map_err(write_io)?;
            done.converted += 1;
        }
    }
    w.flush().map_err(write_io)?;
    Ok(done)
}

fn copy(
    r: &mut BufReader<File>,
    w: &mut BufWriter<File>,
    n: u64,
    path: &str,
    out: &Path,
) -> Result<(), Error> {
    let copied = std::io::copy(&mut r.by_ref().take(n), w).map_err(|source| Error::Io {
        path: format!("{path} → {}", out.display()),
        source,
    })?;
    if copied != n {
        return Err(Error::Ggml {
            path: path.to_owned(),
            reason: "it is truncated".into(),
        });
    }
    Ok(())
}

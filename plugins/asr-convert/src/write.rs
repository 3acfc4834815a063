//! Writing the whisper.cpp ggml file: header (hyperparameters), the Slaney mel filterbank,
//! the byte-level vocabulary, then each tensor (name, shape, data at its type).
//!
//! Weights are written at one type, f16 or a 32-value block type (q8_0, q5_1, q5_0, q4_0):
//! whisper.cpp creates every 2-D weight matrix at the file's weight type (`ftype` in the
//! header), keeps convolution kernels in f16, and norms, biases and positional embeddings
//! in f32 — [`tensor_type`] says which is which, the same way whisper.cpp's own `quantize`
//! tool decides.

use std::io::{BufWriter, Write};
use std::path::Path;

use half::f16;
use mediaflow_ggml_blocks::BlockType;

use crate::ct2::{self, Var};
use crate::{mel, tensors, Error, GGML_MAGIC};

/// ggml's quantisation version, which whisper.cpp's `quantize` adds to `ftype` (× 1000) in
/// the files it writes.
const QNT_VERSION: i32 = 2;

/// The header's `ftype` for weights of type `weights` (ggml's `ggml_ftype`), `None` for a
/// type whisper.cpp does not load as a weight type.
pub(crate) fn ftype(weights: BlockType) -> Option<i32> {
    let plain = match weights {
        BlockType::F32 => return Some(0),
        BlockType::F16 => return Some(1),
        BlockType::Q4_0 => 2,
        BlockType::Q4_1 => 3,
        BlockType::Q8_0 => 7,
        BlockType::Q5_0 => 8,
        BlockType::Q5_1 => 9,
        _ => return None,
    };
    Some(QNT_VERSION * 1000 + plain)
}

/// The weight type a header's `ftype` says (the quantisation version taken off).
pub(crate) fn weights_of(ftype: i32) -> Option<BlockType> {
    Some(match ftype % 1000 {
        0 => BlockType::F32,
        1 => BlockType::F16,
        2 => BlockType::Q4_0,
        3 => BlockType::Q4_1,
        7 => BlockType::Q8_0,
        8 => BlockType::Q5_0,
        9 => BlockType::Q5_1,
        _ => return None,
    })
}

/// What whisper.cpp keeps in f32 whatever the weight type: 1-D tensors (norms, biases),
/// the convolution biases (shaped (d, 1)) and the positional embeddings.
pub(crate) fn always_f32(name: &str, dims: usize) -> bool {
    dims < 2
        || name.ends_with("conv1.bias")
        || name.ends_with("conv2.bias")
        || name.ends_with("positional_embedding")
}

/// The type tensor `name` of shape `shape` (outermost first) is written at when the file's
/// weights are `weights`: f32 as [`always_f32`] says, f16 for the convolution kernels
/// (3-D), `weights` for every 2-D matrix. A matrix whose rows are not whole blocks of
/// `weights` cannot be written: whisper.cpp would read it at the weight type regardless.
pub(crate) fn tensor_type(
    name: &str,
    shape: &[usize],
    weights: BlockType,
) -> Result<BlockType, String> {
    if always_f32(name, shape.len()) {
        return Ok(BlockType::F32);
    }
    if shape.len() != 2 || weights == BlockType::F16 {
        return Ok(BlockType::F16);
    }
    let row = shape[1];
    let block = weights.block().0;
    if !row.is_multiple_of(block) {
        return Err(format!(
            "`{name}` has rows of {row} values, not whole {} blocks of {block}",
            weights.name()
        ));
    }
    Ok(weights)
}

/// Appends `values` at type `ty` (f32, f16 or a writable block type) to `out`.
pub(crate) fn encode(ty: BlockType, values: &[f32], out: &mut Vec<u8>) {
    match ty {
        BlockType::F32 => out.extend(values.iter().flat_map(|v| v.to_le_bytes())),
        BlockType::F16 => out.extend(values.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes())),
        _ => {
            mediaflow_ggml_blocks::quantize(ty, values, out);
        }
    }
}

/// Writes one tensor record: dims, name length, type, the shape innermost first, the name,
/// the data.
pub(crate) fn put_tensor(
    w: &mut impl Write,
    name: &str,
    shape: &[usize],
    ty: BlockType,
    data: &[u8],
) -> std::io::Result<()> {
    w.write_all(&(shape.len() as i32).to_le_bytes())?;
    w.write_all(&(name.len() as i32).to_le_bytes())?;
    w.write_all(&(ty.id() as i32).to_le_bytes())?;
    for d in shape.iter().rev() {
        w.write_all(&(*d as i32).to_le_bytes())?;
    }
    w.write_all(name.as_bytes())?;
    w.write_all(data)
}

/// Converts `model.bin` + `vocabulary.txt` (CTranslate2) to a whisper.cpp ggml file with
/// f16 weights.
pub fn convert_ct2_whisper(model: &Path, vocabulary: &Path, out: &Path) -> Result<(), Error> {
    convert_ct2_whisper_as(model, vocabulary, out, BlockType::F16)
}

/// Converts `model.bin` + `vocabulary.txt` (CTranslate2) to a whisper.cpp ggml file whose
/// weight matrices are `weights`: f16, q8_0, q5_1, q5_0 or q4_0.
pub fn convert_ct2_whisper_as(
    model: &Path,
    vocabulary: &Path,
    out: &Path,
    weights: BlockType,
) -> Result<(), Error> {
    let display = model.display().to_string();
    let ftype = writable_ftype(weights, &display)?;
    let vars = ct2::read_model(model)?;
    let vocab = ct2::read_vocabulary(vocabulary)?;
    let scalar = |n: &str| vars.get(n).and_then(Var::scalar).unwrap_or(0) as i32;
    let dims = |n: &str, i: usize| {
        vars.get(n)
            .and_then(|v| v.dims.get(i).copied())
            .unwrap_or(0) as i32
    };
    let tensors = tensors::tensors(&vars, &display)?;
    let types = tensors
        .iter()
        .map(|t| {
            tensor_type(&t.name, &t.shape, weights).map_err(|reason| Error::Format {
                path: display.clone(),
                reason,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let count = |prefix: &str| {
        tensors
            .iter()
            .filter(|t| t.name.starts_with(prefix) && t.name.ends_with(".attn_ln.weight"))
            .count() as i32
    };
    let n_mels = dims("encoder/conv1/weight", 1);
    let hparams = [
        dims("decoder/embeddings/weight", 0),
        dims("encoder/position_encodings/encodings", 0),
        dims("encoder/position_encodings/encodings", 1),
        scalar("encoder/num_heads"),
        count("encoder."),
        dims("decoder/position_encodings/encodings", 0),
        dims("decoder/position_encodings/encodings", 1),
        scalar("decoder/num_heads"),
        count("decoder."),
        n_mels,
        ftype,
    ];
    let io = |source| Error::Io {
        path: out.display().to_string(),
        source,
    };
    let file = std::fs::File::create(out).map_err(io)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let result = (|| -> std::io::Result<()> {
        w.write_all(&GGML_MAGIC.to_le_bytes())?;
        for h in hparams {
            w.write_all(&h.to_le_bytes())?;
        }
        let filters = mel::mel_filters(n_mels as usize);
        w.write_all(&n_mels.to_le_bytes())?;
        w.write_all(&201i32.to_le_bytes())?;
        for f in filters {
            w.write_all(&f.to_le_bytes())?;
        }
        w.write_all(&(vocab.len() as i32).to_le_bytes())?;
        for t in &vocab {
            w.write_all(&(t.len() as i32).to_le_bytes())?;
            w.write_all(t)?;
        }
        let mut data = Vec::new();
        for (t, ty) in tensors.iter().zip(types) {
            data.clear();
            encode(ty, &t.values, &mut data);
            put_tensor(&mut w, &t.name, &t.shape, ty, &data)?;
        }
        Ok(())
    })();
    result.map_err(io)?;
    w.flush().map_err(io)?;
    Ok(())
}

/// The `ftype` of weights the converters write, or why `weights` cannot be written.
pub(crate) fn writable_ftype(weights: BlockType, path: &str) -> Result<i32, Error> {
    match ftype(weights) {
        Some(f) if weights == BlockType::F16 || weights.writable() => Ok(f),
        _ => Err(Error::Format {
            path: path.to_owned(),
            reason: format!(
                "cannot write {} weights: choose f16, q8_0, q5_1, q5_0 or q4_0",
                weights.name()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CTranslate2 file with `vars` (name, dims) as float32 holding 0, 1, 2, … (modulo
    /// 1024, so every value is exact in f16) and
    /// `scalars` (name, value) as int32.
    fn ct2_file(vars: &[(String, Vec<u32>)], scalars: &[(&str, i32)]) -> Vec<u8> {
        let mut b = Vec::new();
        let string = |b: &mut Vec<u8>, s: &str| {
            b.extend_from_slice(&(s.len() as u16 + 1).to_le_bytes());
            b.extend_from_slice(s.as_bytes());
            b.push(0);
        };
        b.extend_from_slice(&6u32.to_le_bytes());
        string(&mut b, "WhisperSpec");
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&((vars.len() + scalars.len()) as u32).to_le_bytes());
        for (name, dims) in vars {
            string(&mut b, name);
            b.push(dims.len() as u8);
            for d in dims {
                b.extend_from_slice(&d.to_le_bytes());
            }
            b.push(ct2::DT_F32);
            let n: u32 = dims.iter().product();
            b.extend_from_slice(&(4 * n).to_le_bytes());
            for i in 0..n {
                b.extend_from_slice(&((i % 1024) as f32).to_le_bytes());
            }
        }
        for (name, v) in scalars {
            string(&mut b, name);
            b.push(0);
            b.push(3); // int32
            b.extend_from_slice(&4u32.to_le_bytes());
            b.extend_from_slice(&v.to_le_bytes());
        }
        b
    }

    /// The variables of a one-layer Whisper with width `d`, 2 mel bands and 3 tokens.
    fn tiny_whisper(d: u32) -> Vec<(String, Vec<u32>)> {
        let mut v: Vec<(String, Vec<u32>)> = vec![
            ("encoder/conv1/weight".into(), vec![d, 2, 3]),
            ("encoder/conv1/bias".into(), vec![d]),
            ("encoder/conv2/weight".into(), vec![d, d, 3]),
            ("encoder/conv2/bias".into(), vec![d]),
            ("encoder/position_encodings/encodings".into(), vec![6, d]),
            ("decoder/embeddings/weight".into(), vec![3, d]),
            ("decoder/position_encodings/encodings".into(), vec![5, d]),
        ];
        let linear = |v: &mut Vec<(String, Vec<u32>)>, p: &str, rows: u32, cols: u32| {
            v.push((format!("{p}/weight"), vec![rows, cols]));
            v.push((format!("{p}/bias"), vec![rows]));
        };
        let norm = |v: &mut Vec<(String, Vec<u32>)>, p: &str| {
            v.push((format!("{p}/gamma"), vec![d]));
            v.push((format!("{p}/beta"), vec![d]));
        };
        for side in ["encoder", "decoder"] {
            let l = format!("{side}/layer_0");
            norm(&mut v, &format!("{l}/self_attention/layer_norm"));
            linear(&mut v, &format!("{l}/self_attention/linear_0"), 3 * d, d);
            linear(&mut v, &format!("{l}/self_attention/linear_1"), d, d);
            norm(&mut v, &format!("{l}/ffn/layer_norm"));
            linear(&mut v, &format!("{l}/ffn/linear_0"), 4 * d, d);
            linear(&mut v, &format!("{l}/ffn/linear_1"), d, 4 * d);
            norm(&mut v, &format!("{side}/layer_norm"));
        }
        norm(&mut v, "decoder/layer_0/attention/layer_norm");
        linear(&mut v, "decoder/layer_0/attention/linear_0", d, d);
        linear(&mut v, "decoder/layer_0/attention/linear_1", 2 * d, d);
        linear(&mut v, "decoder/layer_0/attention/linear_2", d, d);
        v
    }

    fn i32_at(b: &[u8], at: usize) -> i32 {
        i32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    /// The offset of the data of tensor `name` in a ggml file.
    fn data_of(b: &[u8], name: &str) -> Option<usize> {
        b.windows(name.len())
            .position(|w| w == name.as_bytes())
            .map(|at| at + name.len())
    }

    #[test]
    fn a_tiny_model_converts_to_a_whole_ggml_file() {
        let dir = tempfile::tempdir().unwrap();
        let (model, vocabulary, out) = (
            dir.path().join("model.bin"),
            dir.path().join("vocabulary.txt"),
            dir.path().join("ggml.bin"),
        );
        let scalars = [("encoder/num_heads", 2), ("decoder/num_heads", 2)];
        std::fs::write(&model, ct2_file(&tiny_whisper(4), &scalars)).unwrap();
        std::fs::write(&vocabulary, "a\nĠb\n<|endoftext|>\n<|startoftranscript|>\n").unwrap();
        convert_ct2_whisper(&model, &vocabulary, &out).unwrap();
        crate::check_ggml(&out).unwrap();

        let b = std::fs::read(&out).unwrap();
        assert_eq!(i32_at(&b, 0) as u32, GGML_MAGIC);
        let hparams: Vec<i32> = (0..11).map(|i| i32_at(&b, 4 + 4 * i)).collect();
        assert_eq!(hparams, [3, 6, 4, 2, 1, 5, 4, 2, 1, 2, 1]);
        let mel = 4 * 12;
        assert_eq!((i32_at(&b, mel), i32_at(&b, mel + 4)), (2, 201));
        let vocab = mel + 8 + 4 * 2 * 201;
        assert_eq!(i32_at(&b, vocab), 2);
        assert_eq!(&b[vocab + 4..vocab + 13], b"\x01\0\0\0a\x02\0\0\0");
        assert_eq!(&b[vocab + 13..vocab + 15], b" b");

        // The fused Q/K/V rows are split: the key starts at row d of linear_0 (value 16),
        // in f16, and whisper.cpp gets no key bias.
        let key = data_of(&b, "encoder.blocks.0.attn.key.weight").unwrap();
        assert_eq!(&b[key..key + 2], f16::from_f32(16.0).to_le_bytes());
        let value_bias = data_of(&b, "decoder.blocks.0.cross_attn.value.bias").unwrap();
        assert_eq!(&b[value_bias..value_bias + 4], 4.0f32.to_le_bytes());
        assert!(data_of(&b, "attn.key.bias").is_none());
        // Conv biases are f32 and shaped (d, 1): 2 dims, the name's length, type 0, the
        // shape innermost first.
        let name = "encoder.conv1.bias";
        let at = data_of(&b, name).unwrap() - name.len() - 20;
        let header: Vec<i32> = (0..5).map(|i| i32_at(&b, at + 4 * i)).collect();
        assert_eq!(header, [2, name.len() as i32, 0, 1, 4]);
    }

    /// (dims, name, type, shape innermost first, data offset) of every tensor of a ggml file.
    fn table(b: &[u8]) -> Vec<(String, i32, Vec<i32>, usize)> {
        let n_mel = i32_at(b, 48) as usize;
        let mut at = 56 + 4 * n_mel * 201;
        let n_vocab = i32_at(b, at);
        at += 4;
        for _ in 0..n_vocab {
            at += 4 + i32_at(b, at) as usize;
        }
        let mut out = Vec::new();
        while at < b.len() {
            let (n_dims, len, ty) = (i32_at(b, at), i32_at(b, at + 4), i32_at(b, at + 8));
            at += 12;
            let dims: Vec<i32> = (0..n_dims as usize)
                .map(|i| i32_at(b, at + 4 * i))
                .collect();
            at += 4 * n_dims as usize;
            let name = String::from_utf8(b[at..at + len as usize].to_vec()).unwrap();
            at += len as usize;
            let ty = BlockType::from_id(ty as u32).unwrap();
            let elements: i32 = dims.iter().product();
            out.push((name, ty.id() as i32, dims, at));
            at += ty.bytes(elements as u64).unwrap() as usize;
        }
        out
    }

    #[test]
    fn weight_matrices_are_quantised_as_whisper_cpp_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let (model, vocabulary) = (
            dir.path().join("model.bin"),
            dir.path().join("vocabulary.txt"),
        );
        let scalars = [("encoder/num_heads", 2), ("decoder/num_heads", 2)];
        std::fs::write(&model, ct2_file(&tiny_whisper(32), &scalars)).unwrap();
        std::fs::write(&vocabulary, "a\nĠb\n<|endoftext|>\n").unwrap();
        let f16_file = dir.path().join("f16.bin");
        convert_ct2_whisper(&model, &vocabulary, &f16_file).unwrap();
        let f16_bytes = std::fs::read(&f16_file).unwrap();
        let f16_table = table(&f16_bytes);

        for (weights, ftype) in [
            (BlockType::Q8_0, 2007),
            (BlockType::Q5_1, 2009),
            (BlockType::Q5_0, 2008),
        ] {
            let direct = dir.path().join(format!("{}.bin", weights.name()));
            convert_ct2_whisper_as(&model, &vocabulary, &direct, weights).unwrap();
            crate::check_ggml(&direct).unwrap();
            let b = std::fs::read(&direct).unwrap();
            assert_eq!(i32_at(&b, 44), ftype, "{}", weights.name());
            let t = table(&b);
            assert_eq!(t.len(), f16_table.len());
            for ((name, ty, dims, at), (_, f16_ty, _, f16_at)) in t.iter().zip(&f16_table) {
                let want = if name.ends_with("conv1.bias")
                    || name.ends_with("conv2.bias")
                    || name.ends_with("positional_embedding")
                    || dims.len() == 1
                {
                    BlockType::F32
                } else if dims.len() == 3 {
                    BlockType::F16
                } else {
                    weights
                };
                assert_eq!(*ty, want.id() as i32, "{name}");
                if want != weights {
                    assert_eq!(f16_ty, ty, "{name}");
                    continue;
                }
                // Every quantised value lies within the format's step of the f16 one.
                let n: i32 = dims.iter().product();
                let mut orig = Vec::new();
                mediaflow_ggml_blocks::dequantize(
                    BlockType::F16,
                    &f16_bytes[*f16_at..f16_at + 2 * n as usize],
                    &mut orig,
                );
                let mut got = Vec::new();
                let len = weights.bytes(n as u64).unwrap() as usize;
                mediaflow_ggml_blocks::dequantize(weights, &b[*at..at + len], &mut got);
                for (o, g) in orig.chunks(32).zip(got.chunks(32)) {
                    let amax = o.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let steps = match weights {
                        BlockType::Q8_0 => 127.0,
                        _ => 15.0,
                    };
                    for (x, y) in o.iter().zip(g) {
                        assert!(
                            (x - y).abs() <= amax / steps + amax * 2e-3,
                            "{name}: {x} → {y}"
                        );
                    }
                }
            }
            // Requantising the f16 file gives the very file converted directly.
            let again = dir.path().join(format!("again-{}.bin", weights.name()));
            let r = crate::requantize_ggml(&f16_file, &again, weights).unwrap();
            assert!(r.converted > 0 && r.kept > 0, "{r:?}");
            assert_eq!(std::fs::read(&again).unwrap(), b, "{}", weights.name());
            // …and a quantised file is not requantised again.
            let err = crate::requantize_ggml(&direct, &dir.path().join("x.bin"), BlockType::Q4_0)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("already") && err.contains(direct.to_str().unwrap()),
                "{err}"
            );
        }

        // A width that is not whole blocks cannot hold quantised weights.
        std::fs::write(&model, ct2_file(&tiny_whisper(4), &scalars)).unwrap();
        let err = convert_ct2_whisper_as(
            &model,
            &vocabulary,
            &dir.path().join("q.bin"),
            BlockType::Q8_0,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not whole q8_0 blocks"), "{err}");
        let err = convert_ct2_whisper_as(
            &model,
            &vocabulary,
            &dir.path().join("q.bin"),
            BlockType::Q6K,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("cannot write q6_K"), "{err}");
    }
}

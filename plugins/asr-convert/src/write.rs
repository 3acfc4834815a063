//! Writing the whisper.cpp ggml file: header (hyperparameters), the Slaney mel filterbank,
//! the byte-level vocabulary, then each tensor (name, shape, f32 or f16 data).

use std::io::{BufWriter, Write};
use std::path::Path;

use half::f16;

use crate::ct2::{self, Var};
use crate::{mel, tensors, Error, GGML_MAGIC};

/// Converts `model.bin` + `vocabulary.txt` (CTranslate2) to a whisper.cpp ggml file.
pub fn convert_ct2_whisper(model: &Path, vocabulary: &Path, out: &Path) -> Result<(), Error> {
    let display = model.display().to_string();
    let vars = ct2::read_model(model)?;
    let vocab = ct2::read_vocabulary(vocabulary)?;
    let scalar = |n: &str| vars.get(n).and_then(Var::scalar).unwrap_or(0) as i32;
    let dims = |n: &str, i: usize| {
        vars.get(n)
            .and_then(|v| v.dims.get(i).copied())
            .unwrap_or(0) as i32
    };
    let tensors = tensors::tensors(&vars, &display)?;
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
        1, // ftype: f16 weights
    ];
    let io = |source| Error::Io {
        path: out.display().to_string(),
        source,
    };
    let file = std::fs::File::create(out).map_err(io)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut put = |bytes: &[u8]| w.write_all(bytes);
    let result = (|| -> std::io::Result<()> {
        put(&GGML_MAGIC.to_le_bytes())?;
        for h in hparams {
            put(&h.to_le_bytes())?;
        }
        let filters = mel::mel_filters(n_mels as usize);
        put(&n_mels.to_le_bytes())?;
        put(&201i32.to_le_bytes())?;
        for f in filters {
            put(&f.to_le_bytes())?;
        }
        put(&(vocab.len() as i32).to_le_bytes())?;
        for t in &vocab {
            put(&(t.len() as i32).to_le_bytes())?;
            put(t)?;
        }
        for t in &tensors {
            let name = t.name.as_bytes();
            put(&(t.shape.len() as i32).to_le_bytes())?;
            put(&(name.len() as i32).to_le_bytes())?;
            put(&(if t.f32 { 0i32 } else { 1 }).to_le_bytes())?;
            for d in t.shape.iter().rev() {
                put(&(*d as i32).to_le_bytes())?;
            }
            put(name)?;
            if t.f32 {
                for v in &t.values {
                    put(&v.to_le_bytes())?;
                }
            } else {
                for v in &t.values {
                    put(&f16::from_f32(*v).to_le_bytes())?;
                }
            }
        }
        Ok(())
    })();
    result.map_err(io)?;
    w.flush().map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CTranslate2 file with `vars` (name, dims) as float32 holding 0, 1, 2, … and
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
                b.extend_from_slice(&(i as f32).to_le_bytes());
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
}

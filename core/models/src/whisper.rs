//! Converts a CTranslate2 Whisper model (faster-whisper's `model.bin` + `vocabulary.txt`)
//! to whisper.cpp's ggml format.
//!
//! CTranslate2 layout: u32 version (6), string spec name, u32 revision, u32 variable count,
//! then per variable: name, u8 rank, u32 dims, u8 dtype, u32 byte count, data; then aliases.
//! Strings are u16-length-prefixed and NUL-terminated.
//!
//! What the conversion has to get right (whisper.cpp reads each tensor at the type it
//! expects, whatever type the file says, so a mistake corrupts the model silently):
//! - CT2 fuses self-attention Q/K/V (`self_attention/linear_0`, split by rows; whisper.cpp
//!   has no key bias, and CT2's is zero) and cross-attention K/V (`attention/linear_1`);
//! - 1-D tensors, positional embeddings and conv biases are f32, conv biases shaped (d, 1),
//!   everything else f16;
//! - the mel filterbank is the 80×201 Slaney filterbank (librosa, sr 16000, n_fft 400);
//! - the vocabulary is GPT-2 byte-level tokens decoded to bytes, ids below `<|endoftext|>`.

use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use half::f16;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
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
}

/// CT2 data types.
const DT_F32: u8 = 0;
const DT_F16: u8 = 4;

struct Var {
    dims: Vec<usize>,
    dtype: u8,
    data: Vec<u8>,
}

impl Var {
    fn as_f32(&self) -> Vec<f32> {
        match self.dtype {
            DT_F16 => self
                .data
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            _ => self
                .data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        }
    }

    fn scalar(&self) -> Option<i64> {
        let d = &self.data;
        match (self.dtype, d.len()) {
            (_, 1) => Some(d[0] as i64),
            (2, 2) => Some(i16::from_le_bytes([d[0], d[1]]) as i64),
            (3, 4) => Some(i32::from_le_bytes([d[0], d[1], d[2], d[3]]) as i64),
            _ => None,
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ConvertError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len());
        let Some(end) = end else {
            return Err(ConvertError::Format {
                path: self.path.to_owned(),
                reason: format!("truncated at byte {}", self.pos),
            });
        };
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, ConvertError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ConvertError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, ConvertError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Result<String, ConvertError> {
        let n = self.u16()? as usize;
        let b = self.take(n)?;
        Ok(String::from_utf8_lossy(b).trim_end_matches('\0').to_owned())
    }
}

fn read_ct2(path: &Path) -> Result<BTreeMap<String, Var>, ConvertError> {
    let display = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ConvertError::Io {
        path: display.clone(),
        source,
    })?;
    let bad = |reason: String| ConvertError::Format {
        path: display.clone(),
        reason,
    };
    let mut r = Reader {
        bytes: &bytes,
        pos: 0,
        path: &display,
    };
    let version = r.u32()?;
    if !(5..=6).contains(&version) {
        return Err(bad(format!(
            "unsupported CTranslate2 format version {version}"
        )));
    }
    let spec = r.string()?;
    if spec != "WhisperSpec" {
        return Err(bad(format!("the model spec is `{spec}`, not WhisperSpec")));
    }
    let _revision = r.u32()?;
    let count = r.u32()?;
    let mut vars = BTreeMap::new();
    for _ in 0..count {
        let name = r.string()?;
        let rank = r.u8()? as usize;
        let mut dims = Vec::with_capacity(rank);
        for _ in 0..rank {
            dims.push(r.u32()? as usize);
        }
        let dtype = r.u8()?;
        let nbytes = r.u32()? as usize;
        let data = r.take(nbytes)?.to_vec();
        vars.insert(name, Var { dims, dtype, data });
    }
    Ok(vars)
}

/// GPT-2's byte ↔ printable-character table, reversed: character → byte.
fn unicode_to_byte() -> BTreeMap<char, u8> {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    bs.into_iter()
        .zip(cs)
        .filter_map(|(b, c)| char::from_u32(c).map(|c| (c, b as u8)))
        .collect()
}

fn read_vocab(path: &Path) -> Result<Vec<Vec<u8>>, ConvertError> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConvertError::Io {
        path: display.clone(),
        source,
    })?;
    let table = unicode_to_byte();
    let mut tokens = Vec::new();
    for line in text.lines() {
        if line == "<|endoftext|>" {
            return Ok(tokens);
        }
        // A token outside the byte table cannot come from a byte-level vocabulary.
        let bytes: Option<Vec<u8>> = line.chars().map(|c| table.get(&c).copied()).collect();
        tokens.push(bytes.ok_or_else(|| ConvertError::Format {
            path: display.clone(),
            reason: format!("token {} `{line}` is not GPT-2 byte-level", tokens.len()),
        })?);
    }
    Err(ConvertError::Format {
        path: display,
        reason: "no `<|endoftext|>` token".to_owned(),
    })
}

/// librosa's `filters.mel(sr=16000, n_fft=400, n_mels=80)`: Slaney mel scale and norm.
pub fn mel_filters(n_mels: usize) -> Vec<f32> {
    let (sr, n_fft) = (16000.0f64, 400usize);
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    let hz_to_mel = |f: f64| {
        if f >= min_log_hz {
            min_log_mel + (f / min_log_hz).ln() / logstep
        } else {
            f / f_sp
        }
    };
    let mel_to_hz = |m: f64| {
        if m >= min_log_mel {
            min_log_hz * (logstep * (m - min_log_mel)).exp()
        } else {
            f_sp * m
        }
    };
    let bins = n_fft / 2 + 1;
    let fft: Vec<f64> = (0..bins).map(|k| k as f64 * sr / n_fft as f64).collect();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut out = Vec::with_capacity(n_mels * bins);
    for i in 0..n_mels {
        let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
        for f in &fft {
            let lower = (f - mel_f[i]) / (mel_f[i + 1] - mel_f[i]);
            let upper = (mel_f[i + 2] - f) / (mel_f[i + 2] - mel_f[i + 1]);
            out.push((lower.min(upper).max(0.0) * enorm) as f32);
        }
    }
    out
}

/// One tensor for the ggml file.
struct Tensor {
    name: String,
    /// Outermost first (PyTorch order).
    shape: Vec<usize>,
    values: Vec<f32>,
    f32: bool,
}

fn rows(v: &[f32], width: usize, from: usize, to: usize) -> Vec<f32> {
    v[from * width..to * width].to_vec()
}

/// The whisper.cpp tensors of a CT2 model, in a deterministic order.
fn tensors(vars: &BTreeMap<String, Var>, path: &str) -> Result<Vec<Tensor>, ConvertError> {
    let get = |n: &str| {
        vars.get(n).ok_or_else(|| ConvertError::Format {
            path: path.to_owned(),
            reason: format!("variable `{n}` is missing"),
        })
    };
    for (name, v) in vars {
        if v.dims.len() > 1 && v.dtype != DT_F16 && v.dtype != DT_F32 {
            return Err(ConvertError::Format {
                path: path.to_owned(),
                reason: format!(
                    "`{name}` is quantized (type {}); only float16/float32 models convert",
                    v.dtype
                ),
            });
        }
    }
    let mut out = Vec::new();
    let mut push = |name: String, shape: Vec<usize>, values: Vec<f32>| {
        let f32 = shape.len() < 2
            || name.ends_with("conv1.bias")
            || name.ends_with("conv2.bias")
            || name.ends_with("positional_embedding");
        out.push(Tensor {
            name,
            shape,
            values,
            f32,
        });
    };
    let plain = |n: &str| -> Result<(Vec<usize>, Vec<f32>), ConvertError> {
        let v = get(n)?;
        Ok((v.dims.clone(), v.as_f32()))
    };
    let simple = |ct2: &str,
                  ggml: String,
                  push: &mut dyn FnMut(String, Vec<usize>, Vec<f32>)|
     -> Result<(), ConvertError> {
        let (shape, values) = plain(ct2)?;
        push(ggml, shape, values);
        Ok(())
    };
    let layers = |prefix: &str| {
        (0..)
            .take_while(|i| {
                vars.keys()
                    .any(|k| k.starts_with(&format!("{prefix}/layer_{i}/")))
            })
            .count()
    };
    let (enc_layers, dec_layers) = (layers("encoder"), layers("decoder"));
    if enc_layers == 0 || dec_layers == 0 {
        return Err(ConvertError::Format {
            path: path.to_owned(),
            reason: "no encoder or decoder layers".to_owned(),
        });
    }

    // Encoder stem.
    for conv in ["conv1", "conv2"] {
        simple(
            &format!("encoder/{conv}/weight"),
            format!("encoder.{conv}.weight"),
            &mut push,
        )?;
        let (shape, values) = plain(&format!("encoder/{conv}/bias"))?;
        push(format!("encoder.{conv}.bias"), vec![shape[0], 1], values);
    }
    simple(
        "encoder/position_encodings/encodings",
        "encoder.positional_embedding".into(),
        &mut push,
    )?;

    // Splits a fused projection by rows into named parts (`None` parts are dropped).
    let fused = |ct2: &str,
                 parts: &[Option<String>],
                 bias_parts: &[Option<String>],
                 push: &mut dyn FnMut(String, Vec<usize>, Vec<f32>)|
     -> Result<(), ConvertError> {
        let (shape, w) = plain(&format!("{ct2}/weight"))?;
        let (_, b) = plain(&format!("{ct2}/bias"))?;
        let d = shape[0] / parts.len();
        let width = shape[1];
        for (k, name) in parts.iter().enumerate() {
            if let Some(name) = name {
                push(
                    format!("{name}.weight"),
                    vec![d, width],
                    rows(&w, width, k * d, (k + 1) * d),
                );
            }
        }
        for (k, name) in bias_parts.iter().enumerate() {
            if let Some(name) = name {
                push(
                    format!("{name}.bias"),
                    vec![d],
                    b[k * d..(k + 1) * d].to_vec(),
                );
            }
        }
        Ok(())
    };
    let linear = |ct2: &str,
                  name: &str,
                  push: &mut dyn FnMut(String, Vec<usize>, Vec<f32>)|
     -> Result<(), ConvertError> {
        let (ws, w) = plain(&format!("{ct2}/weight"))?;
        push(format!("{name}.weight"), ws, w);
        let (bs, b) = plain(&format!("{ct2}/bias"))?;
        push(format!("{name}.bias"), bs, b);
        Ok(())
    };
    let norm = |ct2: &str,
                name: &str,
                push: &mut dyn FnMut(String, Vec<usize>, Vec<f32>)|
     -> Result<(), ConvertError> {
        let (gs, g) = plain(&format!("{ct2}/gamma"))?;
        push(format!("{name}.weight"), gs, g);
        let (bs, b) = plain(&format!("{ct2}/beta"))?;
        push(format!("{name}.bias"), bs, b);
        Ok(())
    };
    let qkv = |p: &str| {
        [
            Some(format!("{p}.query")),
            Some(format!("{p}.key")),
            Some(format!("{p}.value")),
        ]
    };
    let qkv_bias = |p: &str| [Some(format!("{p}.query")), None, Some(format!("{p}.value"))];

    // The blocks encoder and decoder layers share.
    let self_attention = |c: &str, g: &str, push: &mut dyn FnMut(String, Vec<usize>, Vec<f32>)| {
        norm(
            &format!("{c}/self_attention/layer_norm"),
            &format!("{g}.attn_ln"),
            push,
        )?;
        fused(
            &format!("{c}/self_attention/linear_0"),
            &qkv(&format!("{g}.attn")),
            &qkv_bias(&format!("{g}.attn")),
            push,
        )?;
        linear(
            &format!("{c}/self_attention/linear_1"),
            &format!("{g}.attn.out"),
            push,
        )
    };
    let feed_forward = |c: &str, g: &str, push: &mut dyn FnMut(String, Vec<usize>, Vec<f32>)| {
        norm(&format!("{c}/ffn/layer_norm"), &format!("{g}.mlp_ln"), push)?;
        linear(&format!("{c}/ffn/linear_0"), &format!("{g}.mlp.0"), push)?;
        linear(&format!("{c}/ffn/linear_1"), &format!("{g}.mlp.2"), push)
    };

    for i in 0..enc_layers {
        let (c, g) = (format!("encoder/layer_{i}"), format!("encoder.blocks.{i}"));
        self_attention(&c, &g, &mut push)?;
        feed_forward(&c, &g, &mut push)?;
    }
    norm("encoder/layer_norm", "encoder.ln_post", &mut push)?;

    simple(
        "decoder/embeddings/weight",
        "decoder.token_embedding.weight".into(),
        &mut push,
    )?;
    simple(
        "decoder/position_encodings/encodings",
        "decoder.positional_embedding".into(),
        &mut push,
    )?;
    for i in 0..dec_layers {
        let (c, g) = (format!("decoder/layer_{i}"), format!("decoder.blocks.{i}"));
        self_attention(&c, &g, &mut push)?;
        norm(
            &format!("{c}/attention/layer_norm"),
            &format!("{g}.cross_attn_ln"),
            &mut push,
        )?;
        linear(
            &format!("{c}/attention/linear_0"),
            &format!("{g}.cross_attn.query"),
            &mut push,
        )?;
        fused(
            &format!("{c}/attention/linear_1"),
            &[
                Some(format!("{g}.cross_attn.key")),
                Some(format!("{g}.cross_attn.value")),
            ],
            &[None, Some(format!("{g}.cross_attn.value"))],
            &mut push,
        )?;
        linear(
            &format!("{c}/attention/linear_2"),
            &format!("{g}.cross_attn.out"),
            &mut push,
        )?;
        feed_forward(&c, &g, &mut push)?;
    }
    norm("decoder/layer_norm", "decoder.ln", &mut push)?;
    Ok(out)
}

/// Converts `model.bin` + `vocabulary.txt` (CTranslate2) to a whisper.cpp ggml file.
pub fn convert_ct2_whisper(
    model: &Path,
    vocabulary: &Path,
    out: &Path,
) -> Result<(), ConvertError> {
    let display = model.display().to_string();
    let vars = read_ct2(model)?;
    let vocab = read_vocab(vocabulary)?;
    let scalar = |n: &str| vars.get(n).and_then(Var::scalar).unwrap_or(0) as i32;
    let dims = |n: &str, i: usize| {
        vars.get(n)
            .and_then(|v| v.dims.get(i).copied())
            .unwrap_or(0) as i32
    };
    let tensors = tensors(&vars, &display)?;
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
    let io = |source| ConvertError::Io {
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
        let filters = mel_filters(n_mels as usize);
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

/// Whether `path` starts like a whisper.cpp ggml model.
pub fn is_ggml(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && u32::from_le_bytes(magic) == GGML_MAGIC
}

const GGML_MAGIC: u32 = 0x6767_6d6c;

/// Bytes per block and elements per block of the ggml types whisper.cpp models use.
fn ggml_type_size(ttype: i32) -> Option<(u64, u64)> {
    Some(match ttype {
        0 => (4, 1),   // f32
        1 => (2, 1),   // f16
        2 => (18, 32), // q4_0
        3 => (20, 32), // q4_1
        6 => (22, 32), // q5_0
        7 => (24, 32), // q5_1
        8 => (34, 32), // q8_0
        _ => return None,
    })
}

/// Walks a whisper.cpp ggml file's header, vocabulary and tensor table and checks that the
/// file holds every byte they promise. whisper.cpp itself may read past the end of a
/// truncated file or abort on it; this names the problem first.
pub fn check_ggml(path: &Path) -> Result<(), ConvertError> {
    use std::io::{Seek, SeekFrom};
    let display = path.display().to_string();
    let bad = |reason: String| ConvertError::Ggml {
        path: display.clone(),
        reason,
    };
    let io = |source| ConvertError::Io {
        path: display.clone(),
        source,
    };
    let mut f = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
    let len = f.get_ref().metadata().map_err(io)?.len();
    let i32_at = |f: &mut std::io::BufReader<std::fs::File>, what: &str| {
        let mut b = [0u8; 4];
        f.read_exact(&mut b)
            .map(|_| i32::from_le_bytes(b))
            .map_err(|_| bad(format!("it ends inside the {what}")))
    };
    if i32_at(&mut f, "magic")? as u32 != GGML_MAGIC {
        return Err(bad("it does not start with the ggml magic".into()));
    }
    let mut hparams = [0i32; 11];
    for h in &mut hparams {
        *h = i32_at(&mut f, "header")?;
    }
    let (n_mel, n_fft) = (
        i32_at(&mut f, "mel filters")?,
        i32_at(&mut f, "mel filters")?,
    );
    let skip = |f: &mut std::io::BufReader<std::fs::File>, n: u64, what: &str| {
        let pos = f.stream_position().map_err(io)?;
        if pos + n > len {
            return Err(bad(format!(
                "it is truncated: the {what} needs {n} bytes at offset {pos}, but the file has {len}"
            )));
        }
        f.seek(SeekFrom::Current(n as i64)).map_err(io).map(|_| ())
    };
    if !(0..=512).contains(&n_mel) || !(0..=4096).contains(&n_fft) {
        return Err(bad(format!("implausible mel filter shape {n_mel}×{n_fft}")));
    }
    skip(&mut f, 4 * n_mel as u64 * n_fft as u64, "mel filters")?;
    let n_vocab = i32_at(&mut f, "vocabulary")?;
    if !(0..=1_000_000).contains(&n_vocab) {
        return Err(bad(format!("implausible vocabulary size {n_vocab}")));
    }
    for _ in 0..n_vocab {
        let n = i32_at(&mut f, "vocabulary")?;
        skip(&mut f, n.max(0) as u64, "vocabulary")?;
    }
    let mut tensors = 0;
    while f.stream_position().map_err(io)? < len {
        let n_dims = i32_at(&mut f, "tensor table")?;
        let name_len = i32_at(&mut f, "tensor table")?;
        let ttype = i32_at(&mut f, "tensor table")?;
        if !(1..=4).contains(&n_dims) || !(1..=512).contains(&name_len) {
            return Err(bad(format!("tensor {tensors} has a corrupt header")));
        }
        let mut elements = 1u64;
        for _ in 0..n_dims {
            elements = elements.saturating_mul(i32_at(&mut f, "tensor table")?.max(0) as u64);
        }
        skip(&mut f, name_len as u64, "tensor name")?;
        let Some((block_bytes, block)) = ggml_type_size(ttype) else {
            // A type this check does not know: trust the rest to whisper.cpp.
            return Ok(());
        };
        skip(
            &mut f,
            elements.div_ceil(block) * block_bytes,
            "tensor data",
        )?;
        tensors += 1;
    }
    if tensors == 0 {
        return Err(bad("it holds no tensors".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_filters_match_librosa() {
        // Values from openai-whisper's `assets/mel_filters.npz` (`mel_80`), which is
        // librosa.filters.mel(sr=16000, n_fft=400, n_mels=80).
        let f = mel_filters(80);
        assert_eq!(f.len(), 80 * 201);
        assert!((f[1] - 0.024_862_595).abs() < 1e-7, "{}", f[1]);
        assert!((f[79 * 201 + 190] - 0.002_232_055).abs() < 1e-7);
        assert_eq!(f[2], 0.0);
        let total: f64 = f.iter().map(|v| *v as f64).sum();
        assert!((total - 1.999_024_092).abs() < 1e-5, "{total}");
    }

    #[test]
    fn byte_table_inverts_gpt2() {
        let t = unicode_to_byte();
        assert_eq!(t.len(), 256);
        assert_eq!(t[&'Ġ'], b' ');
        assert_eq!(t[&'a'], b'a');
    }

    #[test]
    fn check_ggml_finds_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.bin");
        let mut bytes = Vec::new();
        let mut put = |v: i32| bytes.extend_from_slice(&v.to_le_bytes());
        put(GGML_MAGIC as i32);
        for h in [4, 2, 4, 1, 1, 2, 4, 1, 1, 1, 1] {
            put(h);
        }
        put(1); // n_mel
        put(2); // n_fft
        put(0);
        put(0); // two filter values
        put(1); // one vocabulary entry…
        put(1); // …of one byte
        bytes.push(b'a');
        let mut put = |v: i32| bytes.extend_from_slice(&v.to_le_bytes());
        put(1); // n_dims
        put(1); // name length
        put(0); // f32
        put(3); // 3 elements
        bytes.push(b'w');
        bytes.extend_from_slice(&[0u8; 12]);
        std::fs::write(&path, &bytes).unwrap();
        check_ggml(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let err = check_ggml(&path).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        std::fs::write(&path, b"GGUF and then something").unwrap();
        assert!(check_ggml(&path).is_err());
    }
}

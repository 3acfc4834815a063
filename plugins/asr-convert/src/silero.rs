//! Silero VAD (`silero_vad_v6.onnx`, as faster-whisper ships it) → whisper.cpp's VAD model
//! file, so that whisper.cpp's own VAD runs the very weights faster-whisper runs.
//!
//! Only the ONNX file's initializers are read (a few protobuf fields; nothing is executed):
//! the STFT basis, four encoder convolutions, the LSTM and the final 1×1 convolution. The
//! graph around them is the one whisper.cpp builds for Silero (reflect-padded STFT with
//! stride 128, convolutions with strides 1, 2, 2, 1, one LSTM step, sigmoid).
//! ONNX orders an LSTM's gates input, output, forget, cell; whisper.cpp (as PyTorch) input,
//! forget, cell, output: the gate blocks are reordered. The output file is whisper.cpp's
//! layout: magic, model type, version, window and context sizes, the layer sizes, then
//! each tensor as in the Whisper ggml files.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::Path;

use mediaflow_ggml_blocks::BlockType;

use crate::write::{encode, put_tensor};
use crate::{Error, GGML_MAGIC};

/// One float tensor from the ONNX file.
struct Initializer {
    dims: Vec<usize>,
    values: Vec<f32>,
}

/// A protobuf reader over a byte slice: just what reading initializers needs.
struct Pb<'a> {
    b: &'a [u8],
    at: usize,
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

impl<'a> Pb<'a> {
    fn new(b: &'a [u8]) -> Self {
        Pb { b, at: 0 }
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.at)?;
            self.at += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// The next (field number, value), `None` at the end; `Err` on malformed input.
    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, String> {
        if self.at >= self.b.len() {
            return Ok(None);
        }
        let at = self.at;
        let bad = move || format!("malformed protobuf at byte {at}");
        let key = self.varint().ok_or_else(bad)?;
        let field = match key & 7 {
            0 => Field::Varint(self.varint().ok_or_else(bad)?),
            1 | 5 => {
                self.at += if key & 7 == 1 { 8 } else { 4 };
                Field::Fixed
            }
            2 => {
                let n = self.varint().ok_or_else(bad)? as usize;
                let end = self.at.checked_add(n).filter(|e| *e <= self.b.len());
                let end = end.ok_or_else(bad)?;
                let bytes = &self.b[self.at..end];
                self.at = end;
                Field::Bytes(bytes)
            }
            _ => return Err(bad()),
        };
        if self.at > self.b.len() {
            return Err(bad());
        }
        Ok(Some((key >> 3, field)))
    }
}

/// The float initializers of an ONNX model's main graph, by name, and its nodes as
/// (op type, input names).
type Graph = (BTreeMap<String, Initializer>, Vec<(String, Vec<String>)>);

fn read_graph(onnx: &[u8]) -> Result<Graph, String> {
    let mut graph = None;
    let mut model = Pb::new(onnx);
    while let Some((n, f)) = model.next()? {
        if let (7, Field::Bytes(g)) = (n, f) {
            graph = Some(g);
        }
    }
    let graph = graph.ok_or("it has no graph")?;
    let mut out = BTreeMap::new();
    let mut nodes = Vec::new();
    let mut g = Pb::new(graph);
    while let Some((n, f)) = g.next()? {
        if let (1, Field::Bytes(node)) = (n, &f) {
            let (mut op, mut inputs) = (String::new(), Vec::new());
            let mut p = Pb::new(node);
            while let Some((n, f)) = p.next()? {
                match (n, f) {
                    (1, Field::Bytes(i)) => inputs.push(String::from_utf8_lossy(i).into_owned()),
                    (4, Field::Bytes(o)) => op = String::from_utf8_lossy(o).into_owned(),
                    _ => {}
                }
            }
            nodes.push((op, inputs));
            continue;
        }
        let (5, Field::Bytes(t)) = (n, f) else {
            continue;
        };
        let (mut dims, mut dtype, mut name, mut raw, mut floats) =
            (Vec::new(), 0, String::new(), None, Vec::new());
        let mut t = Pb::new(t);
        while let Some((n, f)) = t.next()? {
            match (n, f) {
                (1, Field::Varint(d)) => dims.push(d as usize),
                (1, Field::Bytes(packed)) => {
                    let mut p = Pb::new(packed);
                    while p.at < packed.len() {
                        dims.push(p.varint().ok_or("malformed dims")? as usize);
                    }
                }
                (2, Field::Varint(d)) => dtype = d,
                (8, Field::Bytes(s)) => name = String::from_utf8_lossy(s).into_owned(),
                (9, Field::Bytes(r)) => raw = Some(r),
                (4, Field::Bytes(packed)) => floats.extend(
                    packed
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                ),
                _ => {}
            }
        }
        if dtype != 1 {
            continue; // Not float: shape constants and the like.
        }
        let values = match raw {
            Some(r) => r
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            None => floats,
        };
        let want: usize = dims.iter().product();
        if values.len() != want {
            return Err(format!(
                "`{name}` holds {} values for its shape {dims:?}",
                values.len()
            ));
        }
        out.insert(name, Initializer { dims, values });
    }
    Ok((out, nodes))
}

/// `silero_vad_v6.onnx` → whisper.cpp's Silero VAD model file.
pub fn convert_silero_vad(onnx: &Path, out: &Path) -> Result<(), Error> {
    let path = onnx.display().to_string();
    let bad = |reason: String| Error::Format {
        path: path.clone(),
        reason: format!("not a Silero VAD v6 ONNX model: {reason}"),
    };
    let bytes = std::fs::read(onnx).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let (init, nodes) = read_graph(&bytes).map_err(&bad)?;
    let get = |name: &str, dims: &[usize]| -> Result<&Initializer, Error> {
        let t = init
            .get(name)
            .ok_or_else(|| bad(format!("`{name}` is missing")))?;
        if t.dims != dims {
            return Err(bad(format!(
                "`{name}` has shape {:?}, not {dims:?}",
                t.dims
            )));
        }
        Ok(t)
    };
    const H: usize = 128;
    let basis = get(
        "encoder.feature_extractor.forward_basis_buffer",
        &[258, 1, 256],
    )?;
    let layers = [(129, 128), (128, 64), (64, 64), (64, 128)];
    let mut convs = Vec::new();
    for (i, (cin, cout)) in layers.iter().enumerate() {
        convs.push((
            get(
                &format!("encoder.conv_layers.{i}.weight"),
                &[*cout, *cin, 3],
            )?,
            get(&format!("encoder.conv_layers.{i}.bias"), &[*cout])?,
        ));
    }
    // The LSTM node's inputs 1, 2 and 3 name its W, R and B.
    let lstm = nodes
        .iter()
        .find(|(op, _)| op == "LSTM")
        .map(|(_, inputs)| inputs)
        .filter(|inputs| inputs.len() >= 4)
        .ok_or_else(|| bad("it has no LSTM node with weights and biases".into()))?;
    let w = get(&lstm[1], &[1, 4 * H, H])?;
    let r = get(&lstm[2], &[1, 4 * H, H])?;
    let b = get(&lstm[3], &[1, 8 * H])?;
    let decoder_w = get("decoder.conv1d.weight", &[1, H, 1])?;
    let decoder_b = get("decoder.conv1d.bias", &[1])?;

    // ONNX gate blocks i, o, f, c → PyTorch's i, f, c(g), o.
    let reorder = |v: &[f32]| -> Vec<f32> {
        let block = v.len() / 4;
        [0, 2, 3, 1]
            .iter()
            .flat_map(|g| v[g * block..(g + 1) * block].iter().copied())
            .collect()
    };
    let tensors: Vec<(&str, Vec<usize>, BlockType, Vec<f32>)> = {
        let mut t = vec![(
            "_model.stft.forward_basis_buffer",
            vec![258, 1, 256],
            BlockType::F16,
            basis.values.clone(),
        )];
        // Encoder weight and bias names, in VAD_TENSORS' order after the basis.
        let names: Vec<(&str, &str)> = VAD_TENSORS[1..9]
            .chunks_exact(2)
            .map(|p| (p[0], p[1]))
            .collect();
        for ((wn, bn), (cw, cb)) in names.iter().zip(&convs) {
            t.push((*wn, cw.dims.clone(), BlockType::F16, cw.values.clone()));
            t.push((*bn, cb.dims.clone(), BlockType::F32, cb.values.clone()));
        }
        t.push((
            "_model.decoder.rnn.weight_ih",
            vec![4 * H, H],
            BlockType::F32,
            reorder(&w.values),
        ));
        t.push((
            "_model.decoder.rnn.weight_hh",
            vec![4 * H, H],
            BlockType::F32,
            reorder(&r.values),
        ));
        t.push((
            "_model.decoder.rnn.bias_ih",
            vec![4 * H],
            BlockType::F32,
            reorder(&b.values[..4 * H]),
        ));
        t.push((
            "_model.decoder.rnn.bias_hh",
            vec![4 * H],
            BlockType::F32,
            reorder(&b.values[4 * H..]),
        ));
        t.push((
            "_model.decoder.decoder.2.weight",
            vec![1, H],
            BlockType::F16,
            decoder_w.values.clone(),
        ));
        t.push((
            "_model.decoder.decoder.2.bias",
            vec![1],
            BlockType::F32,
            decoder_b.values.clone(),
        ));
        t
    };

    let io = |source| Error::Io {
        path: out.display().to_string(),
        source,
    };
    let mut f = BufWriter::new(std::fs::File::create(out).map_err(io)?);
    let result = (|| -> std::io::Result<()> {
        let mut put = |v: i32| f.write_all(&v.to_le_bytes());
        put(GGML_MAGIC as i32)?;
        let model_type = b"silero-16k";
        put(model_type.len() as i32)?;
        f.write_all(model_type)?;
        let mut put = |v: i32| f.write_all(&v.to_le_bytes());
        // Version 6.0.0; a window of 512 samples with 64 of context; the layer sizes.
        for v in [6, 0, 0, 512, 64, layers.len() as i32] {
            put(v)?;
        }
        for (cin, cout) in layers {
            for v in [cin as i32, cout as i32, 3] {
                put(v)?;
            }
        }
        for v in [H as i32, H as i32, H as i32, 1] {
            put(v)?;
        }
        let mut data = Vec::new();
        for (name, shape, ty, values) in &tensors {
            data.clear();
            encode(*ty, values, &mut data);
            put_tensor(&mut f, name, shape, *ty, &data)?;
        }
        f.flush()
    })();
    result.map_err(io)
}

/// Reading a file's bytes in order.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.b.len())?;
        let out = &self.b[self.at..end];
        self.at = end;
        Some(out)
    }

    fn int(&mut self) -> Option<i32> {
        self.bytes(4)
            .map(|x| i32::from_le_bytes([x[0], x[1], x[2], x[3]]))
    }
}

/// The tensors whisper.cpp's VAD loader requires.
const VAD_TENSORS: [&str; 15] = [
    "_model.stft.forward_basis_buffer",
    "_model.encoder.0.reparam_conv.weight",
    "_model.encoder.0.reparam_conv.bias",
    "_model.encoder.1.reparam_conv.weight",
    "_model.encoder.1.reparam_conv.bias",
    "_model.encoder.2.reparam_conv.weight",
    "_model.encoder.2.reparam_conv.bias",
    "_model.encoder.3.reparam_conv.weight",
    "_model.encoder.3.reparam_conv.bias",
    "_model.decoder.rnn.weight_ih",
    "_model.decoder.rnn.weight_hh",
    "_model.decoder.rnn.bias_ih",
    "_model.decoder.rnn.bias_hh",
    "_model.decoder.decoder.2.weight",
    "_model.decoder.decoder.2.bias",
];

/// Checks that `path` is a whole whisper.cpp VAD model before whisper.cpp loads it (which
/// reads a truncated or foreign file without noticing): the magic, a plausible header,
/// every tensor whisper.cpp needs, and every byte the tensor table promises.
pub fn check_silero_vad(path: &Path) -> Result<(), Error> {
    let display = path.display().to_string();
    let bad = |reason: String| Error::Vad {
        path: display.clone(),
        reason,
    };
    let b = std::fs::read(path).map_err(|source| Error::Io {
        path: display.clone(),
        source,
    })?;
    let mut c = Cursor { b: &b, at: 0 };
    let ends = |what: &str| bad(format!("it is truncated: it ends inside {what}"));
    if c.int().ok_or_else(|| ends("the magic"))? as u32 != GGML_MAGIC {
        return Err(bad("it does not start with the ggml magic".into()));
    }
    let type_len = c.int().ok_or_else(|| ends("the header"))?;
    if !(1..=64).contains(&type_len) {
        return Err(bad(format!("implausible model type length {type_len}")));
    }
    c.bytes(type_len as usize)
        .ok_or_else(|| ends("the header"))?;
    for _ in 0..5 {
        c.int().ok_or_else(|| ends("the header"))?;
    }
    let layers = c.int().ok_or_else(|| ends("the header"))?;
    if !(1..=8).contains(&layers) {
        return Err(bad(format!("implausible encoder layer count {layers}")));
    }
    for _ in 0..3 * layers + 4 {
        c.int().ok_or_else(|| ends("the header"))?;
    }
    let mut found = Vec::new();
    while c.at < b.len() {
        let mut int = || c.int().ok_or_else(|| ends("the tensor table"));
        let (n_dims, name_len, ttype) = (int()?, int()?, int()?);
        if !(1..=4).contains(&n_dims) || !(1..=256).contains(&name_len) {
            return Err(bad(format!("tensor {} has a corrupt header", found.len())));
        }
        let mut elements = 1u64;
        for _ in 0..n_dims {
            let d = c.int().ok_or_else(|| ends("the tensor table"))?;
            elements = elements.saturating_mul(d.max(0) as u64);
        }
        let name = c
            .bytes(name_len as usize)
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .ok_or_else(|| ends("a tensor name"))?;
        let ty = BlockType::from_id(ttype as u32)
            .filter(|t| ttype >= 0 && matches!(t, BlockType::F32 | BlockType::F16))
            .ok_or_else(|| bad(format!("tensor `{name}` has type {ttype}, not f32 or f16")))?;
        let bytes = ty.bytes(elements).unwrap_or(u64::MAX);
        let at = c.at;
        if c.bytes(usize::try_from(bytes).unwrap_or(usize::MAX))
            .is_none()
        {
            return Err(bad(format!(
                "it is truncated: tensor `{name}` needs {bytes} bytes at offset {at}, but the file has {}",
                b.len()
            )));
        }
        found.push(name);
    }
    if let Some(missing) = VAD_TENSORS.iter().find(|n| !found.iter().any(|f| f == *n)) {
        return Err(bad(format!("tensor `{missing}` is missing")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn bytes_field(n: u64, b: &[u8], out: &mut Vec<u8>) {
        varint(n << 3 | 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }

    /// A TensorProto: dims, float type, name, raw data 0, 1, 2, … + `base`.
    fn tensor(name: &str, dims: &[usize], base: f32) -> Vec<u8> {
        let mut t = Vec::new();
        for d in dims {
            varint(1 << 3, &mut t);
            varint(*d as u64, &mut t);
        }
        varint(2 << 3, &mut t);
        varint(1, &mut t);
        bytes_field(8, name.as_bytes(), &mut t);
        let n: usize = dims.iter().product();
        let raw: Vec<u8> = (0..n)
            .flat_map(|i| (i as f32 + base).to_le_bytes())
            .collect();
        bytes_field(9, &raw, &mut t);
        t
    }

    fn model(tensors: &[Vec<u8>]) -> Vec<u8> {
        let mut graph = Vec::new();
        let mut lstm = Vec::new();
        for input in ["x", "onnx::LSTM_209", "onnx::LSTM_210", "onnx::LSTM_211"] {
            bytes_field(1, input.as_bytes(), &mut lstm);
        }
        bytes_field(4, b"LSTM", &mut lstm);
        bytes_field(1, &lstm, &mut graph);
        for t in tensors {
            bytes_field(5, t, &mut graph);
        }
        let mut m = Vec::new();
        varint(1 << 3, &mut m);
        varint(8, &mut m); // ir_version
        bytes_field(7, &graph, &mut m);
        m
    }

    fn silero(drop: Option<&str>) -> Vec<u8> {
        let mut t = vec![tensor(
            "encoder.feature_extractor.forward_basis_buffer",
            &[258, 1, 256],
            0.0,
        )];
        for (i, (cin, cout)) in [(129, 128), (128, 64), (64, 64), (64, 128)]
            .iter()
            .enumerate()
        {
            t.push(tensor(
                &format!("encoder.conv_layers.{i}.weight"),
                &[*cout, *cin, 3],
                0.0,
            ));
            t.push(tensor(
                &format!("encoder.conv_layers.{i}.bias"),
                &[*cout],
                0.0,
            ));
        }
        t.push(tensor("decoder.conv1d.weight", &[1, 128, 1], 0.0));
        t.push(tensor("decoder.conv1d.bias", &[1], 0.0));
        t.push(tensor("onnx::LSTM_209", &[1, 512, 128], 0.0));
        t.push(tensor("onnx::LSTM_210", &[1, 512, 128], 1e6));
        t.push(tensor("onnx::LSTM_211", &[1, 1024], 0.0));
        if let Some(name) = drop {
            t.retain(|x| !x.windows(name.len()).any(|w| w == name.as_bytes()));
        }
        model(&t)
    }

    #[test]
    fn a_silero_model_converts_with_the_lstm_gates_reordered() {
        let dir = tempfile::tempdir().unwrap();
        let (onnx, out) = (dir.path().join("vad.onnx"), dir.path().join("vad.bin"));
        std::fs::write(&onnx, silero(None)).unwrap();
        convert_silero_vad(&onnx, &out).unwrap();
        let b = std::fs::read(&out).unwrap();
        let i32_at = |at: usize| i32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        assert_eq!(i32_at(0) as u32, GGML_MAGIC);
        assert_eq!(i32_at(4), 10);
        assert_eq!(&b[8..18], b"silero-16k");
        let header: Vec<i32> = (0..22).map(|i| i32_at(18 + 4 * i)).collect();
        assert_eq!(
            header,
            [
                6, 0, 0, 512, 64, 4, 129, 128, 3, 128, 64, 3, 64, 64, 3, 64, 128, 3, 128, 128, 128,
                1
            ]
        );
        // weight_ih: rows of the forget gate (ONNX block 2, values from 2·128·128) come
        // second; bias_hh is B's second half, reordered the same way.
        let name = b"_model.decoder.rnn.weight_ih";
        let at = b.windows(name.len()).position(|w| w == name).unwrap() + name.len();
        let value = |k: usize| {
            f32::from_le_bytes([
                b[at + 4 * k],
                b[at + 4 * k + 1],
                b[at + 4 * k + 2],
                b[at + 4 * k + 3],
            ])
        };
        assert_eq!(value(0), 0.0);
        assert_eq!(value(128 * 128), (2 * 128 * 128) as f32);
        assert_eq!(value(3 * 128 * 128), (128 * 128) as f32);
        let name = b"_model.decoder.rnn.weight_hh";
        let at = b.windows(name.len()).position(|w| w == name).unwrap() + name.len();
        assert_eq!(
            f32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]),
            1e6
        );
        let name = b"_model.decoder.rnn.bias_hh";
        let at = b.windows(name.len()).position(|w| w == name).unwrap() + name.len();
        assert_eq!(
            f32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]),
            512.0
        );
    }

    #[test]
    fn a_model_that_is_not_silero_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (onnx, out) = (dir.path().join("vad.onnx"), dir.path().join("vad.bin"));
        std::fs::write(&onnx, silero(Some("encoder.conv_layers.2.bias"))).unwrap();
        let err = convert_silero_vad(&onnx, &out).unwrap_err().to_string();
        assert!(
            err.contains("vad.onnx") && err.contains("`encoder.conv_layers.2.bias` is missing"),
            "{err}"
        );
        // The checker finds a truncated or foreign VAD file.
        std::fs::write(&onnx, silero(None)).unwrap();
        convert_silero_vad(&onnx, &out).unwrap();
        check_silero_vad(&out).unwrap();
        let whole = std::fs::read(&out).unwrap();
        std::fs::write(&out, &whole[..whole.len() - 10]).unwrap();
        let err = check_silero_vad(&out).unwrap_err().to_string();
        assert!(
            err.contains("truncated") && err.contains("vad.bin"),
            "{err}"
        );
        std::fs::write(&out, b"lmggJUNK").unwrap();
        assert!(check_silero_vad(&out).is_err());

        std::fs::write(&onnx, b"\x3a\xff\xff\xff\x0f garbage").unwrap();
        let err = convert_silero_vad(&onnx, &out).unwrap_err().to_string();
        assert!(err.contains("malformed protobuf"), "{err}");
    }
}

//! Requantising a small GGUF file written here, byte by byte as the format has it.

use half::f16;

use super::*;
use mediaflow_ggml_blocks::dequantize;

/// A GGUF v3 file: a string, an array and `general.alignment` (64) in the metadata, then
/// `tensors` (name, dims, type, data) at 64-byte offsets.
fn gguf_file(tensors: &[(&str, Vec<u64>, BlockType, Vec<u8>)]) -> Vec<u8> {
    let mut f = b"GGUF".to_vec();
    f.extend(3u32.to_le_bytes());
    f.extend((tensors.len() as u64).to_le_bytes());
    f.extend(3u64.to_le_bytes());
    let string = |f: &mut Vec<u8>, s: &str| {
        f.extend((s.len() as u64).to_le_bytes());
        f.extend(s.as_bytes());
    };
    string(&mut f, "general.architecture");
    f.extend(8u32.to_le_bytes());
    string(&mut f, "qwen2");
    string(&mut f, "tokenizer.ggml.scores");
    f.extend(9u32.to_le_bytes());
    f.extend(6u32.to_le_bytes());
    f.extend(2u64.to_le_bytes());
    f.extend(1.5f32.to_le_bytes());
    f.extend((-2.0f32).to_le_bytes());
    string(&mut f, "general.alignment");
    f.extend(4u32.to_le_bytes());
    f.extend(64u32.to_le_bytes());
    let mut offset = 0u64;
    for (name, dims, ty, data) in tensors {
        string(&mut f, name);
        f.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            f.extend(d.to_le_bytes());
        }
        f.extend(ty.id().to_le_bytes());
        f.extend(offset.to_le_bytes());
        offset = gguf::align(offset + data.len() as u64, 64);
    }
    for (_, _, _, data) in tensors {
        f.resize(gguf::align(f.len() as u64, 64) as usize, 0);
        f.extend(data);
    }
    f
}

/// A q4_K block of 256 values: sub-block `s` (32 values) has 6-bit scale `sc[s]` and min
/// `mn[s]`, and value `i % 16` at place `i`; d = 0.5, dmin = 0.25. Packed as ggml packs it, written out separately from
/// the reader.
fn q4k_block() -> (Vec<u8>, Vec<f32>) {
    let (d, dmin) = (0.5f32, 0.25f32);
    let sc = [5u8, 17, 29, 33, 41, 50, 63, 20];
    let mn = [2u8, 19, 40, 63, 1, 33, 48, 17];
    let mut scales = [0u8; 12];
    for j in 0..4 {
        scales[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        scales[j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
        scales[j + 8] = (sc[j + 4] & 0x0f) | ((mn[j + 4] & 0x0f) << 4);
    }
    let q = |i: usize| (i % 16) as u8;
    let mut qs = [0u8; 128];
    for chunk in 0..4 {
        for l in 0..32 {
            qs[32 * chunk + l] = q(64 * chunk + l) | (q(64 * chunk + 32 + l) << 4);
        }
    }
    let mut b = f16::from_f32(d).to_le_bytes().to_vec();
    b.extend(f16::from_f32(dmin).to_le_bytes());
    b.extend(scales);
    b.extend(qs);
    let values = (0..256)
        .map(|i| d * f32::from(sc[i / 32]) * f32::from(q(i)) - dmin * f32::from(mn[i / 32]))
        .collect();
    (b, values)
}

/// A q6_K block: value `i % 64 - 32` at place `i`, sub-block `s` (16 values) scaled by
/// `s - 8`, d = 0.125.
fn q6k_block() -> (Vec<u8>, Vec<f32>) {
    let d = 0.125f32;
    let q = |i: usize| (i % 64) as u8;
    let (mut ql, mut qh) = ([0u8; 128], [0u8; 64]);
    for n in 0..2 {
        for l in 0..32 {
            let at = |k: usize| q(128 * n + l + 32 * k);
            ql[64 * n + l] = (at(0) & 0x0f) | ((at(2) & 0x0f) << 4);
            ql[64 * n + l + 32] = (at(1) & 0x0f) | ((at(3) & 0x0f) << 4);
            qh[32 * n + l] =
                (at(0) >> 4) | ((at(1) >> 4) << 2) | ((at(2) >> 4) << 4) | ((at(3) >> 4) << 6);
        }
    }
    let scales: Vec<i8> = (0..16).map(|s| s - 8).collect();
    let mut b = ql.to_vec();
    b.extend(qh);
    b.extend(scales.iter().map(|s| *s as u8));
    b.extend(f16::from_f32(d).to_le_bytes());
    let values = (0..256)
        .map(|i| d * f32::from(scales[i / 16]) * (f32::from(q(i)) - 32.0))
        .collect();
    (b, values)
}

#[test]
fn k_quant_blocks_read_as_ggml_packs_them() {
    for (ty, (block, want)) in [(BlockType::Q4K, q4k_block()), (BlockType::Q6K, q6k_block())] {
        let mut got = Vec::new();
        dequantize(ty, &block, &mut got);
        assert_eq!(got, want, "{}", ty.name());
    }
}

#[test]
fn a_model_is_requantised_with_its_metadata_and_lookups_kept() {
    let (q4k, q4k_values) = q4k_block();
    let (q6k, q6k_values) = q6k_block();
    let norm: Vec<u8> = (0..256).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let file = gguf_file(&[
        (
            "token_embd.weight",
            vec![256, 1],
            BlockType::Q6K,
            q6k.clone(),
        ),
        (
            "blk.0.attn_norm.weight",
            vec![256],
            BlockType::F32,
            norm.clone(),
        ),
        ("blk.0.ffn_up.weight", vec![256, 1], BlockType::Q4K, q4k),
        ("output.weight", vec![256, 1], BlockType::Q6K, q6k.clone()),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in.gguf"), dir.path().join("out.gguf"));
    std::fs::write(&input, &file).unwrap();
    let done = requantize(&input, &out, BlockType::Q8_0).unwrap();
    assert_eq!(
        done,
        Requantized {
            converted: 2,
            kept: 2
        }
    );

    let (mut a, mut b) = (
        std::io::BufReader::new(File::open(&input).unwrap()),
        std::io::BufReader::new(File::open(&out).unwrap()),
    );
    let (before, after) = (
        gguf::read(&mut a, "in").unwrap(),
        gguf::read(&mut b, "out").unwrap(),
    );
    assert_eq!(before.metadata, after.metadata);
    assert_eq!(after.alignment, 64);
    let types: Vec<_> = after.tensors.iter().map(|t| t.ty).collect();
    assert_eq!(
        types,
        [
            BlockType::Q6K,
            BlockType::F32,
            BlockType::Q8_0,
            BlockType::Q8_0
        ]
    );
    let mut bytes = Vec::new();
    for t in &after.tensors {
        assert_eq!(t.offset % 64, 0);
        bytes.push(after.tensor_bytes(&mut b, t, "out").unwrap());
    }
    assert_eq!(bytes[0], q6k);
    assert_eq!(bytes[1], norm);
    let read = |t: usize| {
        let mut v = Vec::new();
        dequantize(after.tensors[t].ty, &bytes[t], &mut v);
        v
    };
    for (got, want) in [(read(2), q4k_values), (read(3), q6k_values)] {
        for (g, w) in got.chunks(32).zip(want.chunks(32)) {
            let amax = w.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (g, w) in g.iter().zip(w) {
                assert!((g - w).abs() <= amax / 254.0 + amax * 1e-3, "{g} vs {w}");
            }
        }
    }
}

#[test]
fn bad_files_are_named_with_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (input, out) = (dir.path().join("in.gguf"), dir.path().join("out.gguf"));
    std::fs::write(&input, b"GGML not a gguf file").unwrap();
    let e = requantize(&input, &out, BlockType::Q8_0)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("in.gguf") && e.contains("does not start with `GGUF`"),
        "{e}"
    );

    let (q4k, _) = q4k_block();
    let mut file = gguf_file(&[("blk.0.ffn_up.weight", vec![256, 1], BlockType::Q4K, q4k)]);
    file.truncate(file.len() - 10);
    std::fs::write(&input, &file).unwrap();
    let e = requantize(&input, &out, BlockType::Q8_0)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tensor `blk.0.ffn_up.weight` is cut short"),
        "{e}"
    );

    let c: &dyn Converter = &GgufRequantize::Q4_0;
    assert_eq!(c.name(), "gguf-q4_0");
    assert_eq!(GgufRequantize::Q8_0.name(), "gguf-q8_0");
}

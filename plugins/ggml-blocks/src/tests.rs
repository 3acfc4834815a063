use super::*;

/// Values of both signs and many magnitudes, 64 of them (two blocks).
fn values() -> Vec<f32> {
    (0..64)
        .map(|i| ((i * 37 % 64) as f32 - 31.5) / 7.0)
        .collect()
}

#[test]
fn every_written_type_round_trips_within_its_step() {
    // (type, steps across the block's range, how many steps a value may be off).
    // q8_0 rounds to the nearest of ±127 steps of amax/127; q5_0 and q4_0 have 16 (8) steps
    // below zero and one fewer above, so a value as large as the block's largest but of the
    // other sign loses a whole step; q5_1 spans min..max in 31 steps, nearest.
    for (ty, within) in [
        (BlockType::Q8_0, 0.5),
        (BlockType::Q5_1, 0.5),
        (BlockType::Q5_0, 1.0),
        (BlockType::Q4_0, 1.0),
    ] {
        let values = values();
        let mut bytes = Vec::new();
        assert!(quantize(ty, &values, &mut bytes));
        assert_eq!(bytes.len() as u64, ty.bytes(64).unwrap(), "{}", ty.name());
        let mut back = Vec::new();
        dequantize(ty, &bytes, &mut back);
        for (block, got) in values.chunks(32).zip(back.chunks(32)) {
            let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            let (lo, hi) = block
                .iter()
                .fold((f32::MAX, f32::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
            let step = match ty {
                BlockType::Q8_0 => amax / 127.0,
                BlockType::Q5_1 => (hi - lo) / 31.0,
                BlockType::Q5_0 => amax / 16.0,
                _ => amax / 8.0,
            };
            for (v, g) in block.iter().zip(got) {
                // The scale is stored as f16: allow its rounding too.
                assert!(
                    (v - g).abs() <= step * within + amax * 2e-3,
                    "{}: {v} → {g} (step {step})",
                    ty.name()
                );
            }
        }
    }
}

#[test]
fn q5_blocks_are_packed_as_ggml_packs_them() {
    // 0, 1, …, 31: q5_1 gives d = 1, m = 0 and quant j for value j. The low nibbles of
    // values j and j + 16 share byte j; the fifth bits of values 16..31 are bits 16..31.
    let ramp: Vec<f32> = (0..32).map(|i| i as f32).collect();
    let mut b = Vec::new();
    quantize_q5_1(&ramp, &mut b);
    assert_eq!(&b[0..2], f16::from_f32(1.0).to_le_bytes());
    assert_eq!(&b[2..4], f16::from_f32(0.0).to_le_bytes());
    assert_eq!(&b[4..8], 0xffff_0000u32.to_le_bytes());
    let qs: Vec<u8> = (0..16u8).map(|j| j | (j << 4)).collect();
    assert_eq!(&b[8..24], &qs[..]);

    // −16, −15, …, 15: q5_0's scale maps −16 to quant 0, so d = 1 and value v is quant
    // v + 16: values 0..15 (quants 16..31) carry the fifth bit.
    let ramp: Vec<f32> = (0..32).map(|i| i as f32 - 16.0).collect();
    let mut b = Vec::new();
    quantize_q5_0(&ramp, &mut b);
    assert_eq!(&b[0..2], f16::from_f32(1.0).to_le_bytes());
    assert_eq!(&b[2..6], 0xffff_0000u32.to_le_bytes());
    assert_eq!(&b[6..22], &qs[..]);
    let mut back = Vec::new();
    dequantize(BlockType::Q5_0, &b, &mut back);
    assert_eq!(back, ramp);
}

#[test]
fn types_are_found_by_name_and_only_block_types_are_written() {
    assert_eq!(BlockType::from_name("Q5_1"), Some(BlockType::Q5_1));
    assert_eq!(BlockType::from_name("q4_k"), Some(BlockType::Q4K));
    assert_eq!(BlockType::from_name("q3_k"), None);
    let mut out = Vec::new();
    assert!(!quantize(BlockType::F16, &values(), &mut out));
    assert!(!quantize(BlockType::Q6K, &values(), &mut out));
    assert!(out.is_empty());
    for ty in ALL {
        assert_eq!(BlockType::from_id(ty.id()), Some(ty));
    }
}

//! ggml's block formats, shared by the converters that write ggml and GGUF files
//! (`mediaflow-llm-convert`, `mediaflow-asr-convert`): every type a GGUF language model or a
//! whisper.cpp model is usually stored in, read to f32, and the four 32-value types the
//! converters write (q8_0, q5_1, q5_0, q4_0), quantised as ggml's reference quantiser
//! (`quantize_row_*_ref`) does, so a file written here is the file ggml's own tools would
//! write. Layouts as ggml's `ggml-common.h` defines them; each block is little-endian, its
//! scale an f16.

use half::f16;

/// A ggml tensor type, by the id GGUF stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
    BF16,
}

impl BlockType {
    pub fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => BlockType::F32,
            1 => BlockType::F16,
            2 => BlockType::Q4_0,
            3 => BlockType::Q4_1,
            6 => BlockType::Q5_0,
            7 => BlockType::Q5_1,
            8 => BlockType::Q8_0,
            12 => BlockType::Q4K,
            13 => BlockType::Q5K,
            14 => BlockType::Q6K,
            30 => BlockType::BF16,
            _ => return None,
        })
    }

    pub fn id(self) -> u32 {
        match self {
            BlockType::F32 => 0,
            BlockType::F16 => 1,
            BlockType::Q4_0 => 2,
            BlockType::Q4_1 => 3,
            BlockType::Q5_0 => 6,
            BlockType::Q5_1 => 7,
            BlockType::Q8_0 => 8,
            BlockType::Q4K => 12,
            BlockType::Q5K => 13,
            BlockType::Q6K => 14,
            BlockType::BF16 => 30,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BlockType::F32 => "f32",
            BlockType::F16 => "f16",
            BlockType::Q4_0 => "q4_0",
            BlockType::Q4_1 => "q4_1",
            BlockType::Q5_0 => "q5_0",
            BlockType::Q5_1 => "q5_1",
            BlockType::Q8_0 => "q8_0",
            BlockType::Q4K => "q4_K",
            BlockType::Q5K => "q5_K",
            BlockType::Q6K => "q6_K",
            BlockType::BF16 => "bf16",
        }
    }

    /// (elements, bytes) of one block.
    pub fn block(self) -> (usize, usize) {
        match self {
            BlockType::F32 => (1, 4),
            BlockType::F16 | BlockType::BF16 => (1, 2),
            BlockType::Q4_0 => (32, 18),
            BlockType::Q4_1 => (32, 20),
            BlockType::Q5_0 => (32, 22),
            BlockType::Q5_1 => (32, 24),
            BlockType::Q8_0 => (32, 34),
            BlockType::Q4K => (256, 144),
            BlockType::Q5K => (256, 176),
            BlockType::Q6K => (256, 210),
        }
    }

    /// The type named `name` (`q8_0`, `Q5_1`, `f16`, …), as [`BlockType::name`] spells it,
    /// in any case.
    pub fn from_name(name: &str) -> Option<Self> {
        ALL.into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// Whether [`quantize`] writes this type.
    pub fn writable(self) -> bool {
        matches!(
            self,
            BlockType::Q8_0 | BlockType::Q5_1 | BlockType::Q5_0 | BlockType::Q4_0
        )
    }

    /// Bytes of `elements` elements (a whole number of blocks), `None` if not whole.
    pub fn bytes(self, elements: u64) -> Option<u64> {
        let (n, b) = self.block();
        elements
            .is_multiple_of(n as u64)
            .then(|| elements / n as u64 * b as u64)
    }
}

const ALL: [BlockType; 11] = [
    BlockType::F32,
    BlockType::F16,
    BlockType::Q4_0,
    BlockType::Q4_1,
    BlockType::Q5_0,
    BlockType::Q5_1,
    BlockType::Q8_0,
    BlockType::Q4K,
    BlockType::Q5K,
    BlockType::Q6K,
    BlockType::BF16,
];

fn half(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// The 6-bit scale and min of sub-block `j` of a q4_K/q5_K block's packed 12 bytes.
fn scale_min_k4(j: usize, q: &[u8]) -> (f32, f32) {
    let (d, m) = if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    };
    (f32::from(d), f32::from(m))
}

/// Appends the f32 values of `data` (whole blocks of type `ty`) to `out`.
pub fn dequantize(ty: BlockType, data: &[u8], out: &mut Vec<f32>) {
    let (_, size) = ty.block();
    for b in data.chunks_exact(size) {
        match ty {
            BlockType::F32 => out.push(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            BlockType::F16 => out.push(half(b, 0)),
            BlockType::BF16 => out.push(f32::from_bits(
                u32::from(u16::from_le_bytes([b[0], b[1]])) << 16,
            )),
            BlockType::Q4_0 => {
                let d = half(b, 0);
                let qs = &b[2..18];
                out.extend(qs.iter().map(|q| (f32::from(q & 0x0f) - 8.0) * d));
                out.extend(qs.iter().map(|q| (f32::from(q >> 4) - 8.0) * d));
            }
            BlockType::Q4_1 => {
                let (d, m) = (half(b, 0), half(b, 2));
                let qs = &b[4..20];
                out.extend(qs.iter().map(|q| f32::from(q & 0x0f) * d + m));
                out.extend(qs.iter().map(|q| f32::from(q >> 4) * d + m));
            }
            BlockType::Q5_0 | BlockType::Q5_1 => {
                let (d, m, at) = match ty {
                    BlockType::Q5_0 => (half(b, 0), -16.0 * half(b, 0), 2),
                    _ => (half(b, 0), half(b, 2), 4),
                };
                let qh = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
                let qs = &b[at + 4..at + 20];
                let value = |low: u8, bit: u32| f32::from(low | (((qh >> bit) & 1) as u8) << 4);
                out.extend((0..16).map(|j| value(qs[j] & 0x0f, j as u32) * d + m));
                out.extend((0..16).map(|j| value(qs[j] >> 4, j as u32 + 16) * d + m));
            }
            BlockType::Q8_0 => {
                let d = half(b, 0);
                out.extend(b[2..34].iter().map(|q| f32::from(*q as i8) * d));
            }
            BlockType::Q4K | BlockType::Q5K => {
                let (d, dmin) = (half(b, 0), half(b, 2));
                let scales = &b[4..16];
                let (qh, qs) = match ty {
                    BlockType::Q5K => (Some(&b[16..48]), &b[48..176]),
                    _ => (None, &b[16..144]),
                };
                for j in 0..4 {
                    let q = &qs[32 * j..32 * j + 32];
                    for (half_, shift) in [(0, 0), (1, 4)] {
                        let (sc, mn) = scale_min_k4(2 * j + half_, scales);
                        let bit = 2 * j + half_;
                        for l in 0..32 {
                            let high = qh.map_or(0, |h| ((h[l] >> bit) & 1) << 4);
                            let v = ((q[l] >> shift) & 0x0f) | high;
                            out.push(d * sc * f32::from(v) - dmin * mn);
                        }
                    }
                }
            }
            BlockType::Q6K => {
                let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
                let d = half(b, 208);
                for n in 0..2 {
                    let (ql, qh, sc) = (&ql[64 * n..], &qh[32 * n..], &sc[8 * n..]);
                    let mut chunk = [0f32; 128];
                    for l in 0..32 {
                        let is = l / 16;
                        let q = |low: u8, shift: u32| {
                            f32::from((low | ((qh[l] >> shift) & 3) << 4) as i8 - 32)
                        };
                        let s = |k: usize| d * f32::from(sc[is + k] as i8);
                        chunk[l] = s(0) * q(ql[l] & 0x0f, 0);
                        chunk[l + 32] = s(2) * q(ql[l + 32] & 0x0f, 2);
                        chunk[l + 64] = s(4) * q(ql[l] >> 4, 4);
                        chunk[l + 96] = s(6) * q(ql[l + 32] >> 4, 6);
                    }
                    out.extend_from_slice(&chunk);
                }
            }
        }
    }
}

/// Appends `values` (a whole number of 32-value blocks) as q8_0 to `out`: per block, the
/// scale is the largest magnitude over 127 and each value its nearest multiple of it.
pub fn quantize_q8_0(values: &[f32], out: &mut Vec<u8>) {
    for block in values.chunks_exact(32) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|v| (v * id).round() as i8 as u8));
    }
}

/// Appends `values` (a whole number of 32-value blocks) as q4_0 to `out`, as ggml's
/// reference quantiser does: the scale maps the value of largest magnitude to −8.
pub fn quantize_q4_0(values: &[f32], out: &mut Vec<u8>) {
    for block in values.chunks_exact(32) {
        let d = signed_max(block) / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        let q = |v: f32| ((v * id + 8.5) as i8).clamp(0, 15) as u8;
        out.extend((0..16).map(|j| q(block[j]) | (q(block[j + 16]) << 4)));
    }
}

/// The value of largest magnitude in `block`, with its sign (the first such, as ggml
/// picks it).
fn signed_max(block: &[f32]) -> f32 {
    block
        .iter()
        .fold(0f32, |m, v| if v.abs() > m.abs() { *v } else { m })
}

/// Packs 32 5-bit values as q5_0/q5_1 store them: the low nibbles of values `j` and
/// `j + 16` share byte `j`; the fifth bits go to a 32-bit word, bit `j` for value `j`.
fn pack5(q: impl Fn(usize) -> u8, out: &mut Vec<u8>) {
    let mut qh = 0u32;
    let mut qs = [0u8; 16];
    for (j, byte) in qs.iter_mut().enumerate() {
        let (lo, hi) = (q(j), q(j + 16));
        *byte = (lo & 0x0f) | ((hi & 0x0f) << 4);
        qh |= u32::from(lo >> 4) << j;
        qh |= u32::from(hi >> 4) << (j + 16);
    }
    out.extend_from_slice(&qh.to_le_bytes());
    out.extend_from_slice(&qs);
}

/// Appends `values` (a whole number of 32-value blocks) as q5_0 to `out`, as ggml's
/// reference quantiser does: the scale maps the value of largest magnitude to −16.
pub fn quantize_q5_0(values: &[f32], out: &mut Vec<u8>) {
    for block in values.chunks_exact(32) {
        let d = signed_max(block) / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        pack5(|j| ((block[j] * id + 16.5) as i8).clamp(0, 31) as u8, out);
    }
}

/// Appends `values` (a whole number of 32-value blocks) as q5_1 to `out`, as ggml's
/// reference quantiser does: 32 steps from the block's minimum to its maximum.
pub fn quantize_q5_1(values: &[f32], out: &mut Vec<u8>) {
    for block in values.chunks_exact(32) {
        let (min, max) = block
            .iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        let d = (max - min) / 31.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        out.extend_from_slice(&f16::from_f32(min).to_le_bytes());
        pack5(|j| (((block[j] - min) * id + 0.5) as u8).min(31), out);
    }
}

/// Appends `values` (a whole number of 32-value blocks) to `out` as `ty`, which must be
/// [`writable`](BlockType::writable); `false` (and nothing written) otherwise.
pub fn quantize(ty: BlockType, values: &[f32], out: &mut Vec<u8>) -> bool {
    match ty {
        BlockType::Q8_0 => quantize_q8_0(values, out),
        BlockType::Q5_1 => quantize_q5_1(values, out),
        BlockType::Q5_0 => quantize_q5_0(values, out),
        BlockType::Q4_0 => quantize_q4_0(values, out),
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests;

//! Checking that a file is a whole whisper.cpp ggml model before whisper.cpp loads it.

use std::io::Read;
use std::path::Path;

use mediaflow_ggml_blocks::BlockType;

use crate::{Error, GGML_MAGIC};

/// Whether `path` starts like a whisper.cpp ggml model.
pub fn is_ggml(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && u32::from_le_bytes(magic) == GGML_MAGIC
}

/// A whisper.cpp model's shape, as its header gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hparams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    pub ftype: i32,
}

/// Walks a whisper.cpp ggml file's header, vocabulary and tensor table and checks that the
/// file holds every byte they promise; returns the header. whisper.cpp itself may read past
/// the end of a truncated file or abort on it; this names the problem first.
pub fn check_ggml(path: &Path) -> Result<Hparams, Error> {
    use std::io::{Seek, SeekFrom};
    let display = path.display().to_string();
    let bad = |reason: String| Error::Ggml {
        path: display.clone(),
        reason,
    };
    let io = |source| Error::Io {
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
    let mut h = [0i32; 11];
    for v in &mut h {
        *v = i32_at(&mut f, "header")?;
    }
    let hparams = Hparams {
        n_vocab: h[0],
        n_audio_ctx: h[1],
        n_audio_state: h[2],
        n_audio_head: h[3],
        n_audio_layer: h[4],
        n_text_ctx: h[5],
        n_text_state: h[6],
        n_text_head: h[7],
        n_text_layer: h[8],
        n_mels: h[9],
        ftype: h[10],
    };
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
        let Some(ty) = BlockType::from_id(ttype as u32).filter(|_| ttype >= 0) else {
            // A type this check does not know: trust the rest to whisper.cpp.
            return Ok(hparams);
        };
        let (block, block_bytes) = ty.block();
        skip(
            &mut f,
            elements.div_ceil(block as u64) * block_bytes as u64,
            "tensor data",
        )?;
        tensors += 1;
    }
    if tensors == 0 {
        return Err(bad("it holds no tensors".into()));
    }
    Ok(hparams)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let h = check_ggml(&path).unwrap();
        assert_eq!((h.n_vocab, h.n_text_layer, h.ftype), (4, 1, 1));
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let err = check_ggml(&path).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        std::fs::write(&path, b"GGUF and then something").unwrap();
        assert!(check_ggml(&path).is_err());
    }
}

//! Reading faster-whisper's files: the CTranslate2 `model.bin` and the GPT-2 byte-level
//! `vocabulary.txt`.
//!
//! CTranslate2 layout: u32 version (6), string spec name, u32 revision, u32 variable count,
//! then per variable: name, u8 rank, u32 dims, u8 dtype, u32 byte count, data; then aliases.
//! Strings are u16-length-prefixed and NUL-terminated.

use std::collections::BTreeMap;
use std::path::Path;

use half::f16;

use crate::Error;

/// CT2 data types.
pub(crate) const DT_F32: u8 = 0;
pub(crate) const DT_F16: u8 = 4;

/// One CT2 variable: its shape (outermost first), type and raw little-endian bytes.
pub(crate) struct Var {
    pub(crate) dims: Vec<usize>,
    pub(crate) dtype: u8,
    data: Vec<u8>,
}

impl Var {
    pub(crate) fn as_f32(&self) -> Vec<f32> {
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

    pub(crate) fn scalar(&self) -> Option<i64> {
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
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len());
        let Some(end) = end else {
            return Err(Error::Format {
                path: self.path.to_owned(),
                reason: format!("truncated at byte {}", self.pos),
            });
        };
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Error> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, Error> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Result<String, Error> {
        let n = self.u16()? as usize;
        let b = self.take(n)?;
        Ok(String::from_utf8_lossy(b).trim_end_matches('\0').to_owned())
    }
}

/// The variables of a CTranslate2 Whisper `model.bin`, by name.
pub(crate) fn read_model(path: &Path) -> Result<BTreeMap<String, Var>, Error> {
    let display = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: display.clone(),
        source,
    })?;
    let bad = |reason: String| Error::Format {
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

/// The tokens of `vocabulary.txt` below `<|endoftext|>`, decoded to bytes.
pub(crate) fn read_vocabulary(path: &Path) -> Result<Vec<Vec<u8>>, Error> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
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
        tokens.push(bytes.ok_or_else(|| Error::Format {
            path: display.clone(),
            reason: format!("token {} `{line}` is not GPT-2 byte-level", tokens.len()),
        })?);
    }
    Err(Error::Format {
        path: display,
        reason: "no `<|endoftext|>` token".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_inverts_gpt2() {
        let t = unicode_to_byte();
        assert_eq!(t.len(), 256);
        assert_eq!(t[&'Ġ'], b' ');
        assert_eq!(t[&'a'], b'a');
    }

    #[test]
    fn vocabulary_is_decoded_to_bytes_up_to_endoftext() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vocabulary.txt");
        std::fs::write(&path, "a\nĠb\nÃ©\n<|endoftext|>\n<|en|>\n").unwrap();
        let tokens = read_vocabulary(&path).unwrap();
        assert_eq!(
            tokens,
            [b"a".to_vec(), b" b".to_vec(), "é".as_bytes().to_vec()]
        );
        std::fs::write(&path, "a\n€\n<|endoftext|>\n").unwrap();
        let err = read_vocabulary(&path).unwrap_err().to_string();
        assert!(err.contains("token 1 `€` is not GPT-2 byte-level"), "{err}");
        std::fs::write(&path, "a\n").unwrap();
        assert!(read_vocabulary(&path).is_err());
    }

    #[test]
    fn a_truncated_model_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bin");
        let mut b = 6u32.to_le_bytes().to_vec();
        b.extend_from_slice(&12u16.to_le_bytes());
        b.extend_from_slice(b"WhisperSpec\0");
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes()); // one variable, which is missing
        std::fs::write(&path, &b).unwrap();
        let err = read_model(&path).err().unwrap().to_string();
        assert!(err.contains("truncated at byte 26"), "{err}");
        std::fs::write(&path, 4u32.to_le_bytes()).unwrap();
        let err = read_model(&path).err().unwrap().to_string();
        assert!(
            err.contains("unsupported CTranslate2 format version 4"),
            "{err}"
        );
    }
}

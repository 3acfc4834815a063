//! The GGUF container (versions 2 and 3): the header, the metadata (kept as raw bytes, only
//! walked to find its end and `general.alignment`), the tensor table, and the tensor data,
//! each tensor at a multiple of the alignment from the start of the data section.

use std::io::{Read, Seek, SeekFrom, Write};

use crate::BlockType;
use crate::Error;

const MAGIC: &[u8; 4] = b"GGUF";
/// A string or array longer than this is not metadata but a damaged file.
const MAX_LEN: u64 = 1 << 30;
const MAX_DIMS: u32 = 4;

/// One entry of the tensor table.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: BlockType,
    /// From the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// What the requantiser needs of a GGUF file.
pub struct Gguf {
    pub version: u32,
    pub kv_count: u64,
    /// The metadata section as it is in the file.
    pub metadata: Vec<u8>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Where the data section starts in the file.
    pub data_start: u64,
}

/// Reads through `r`, keeping the bytes read (for the metadata section).
struct Reader<'a, R> {
    r: &'a mut R,
    keep: Option<Vec<u8>>,
}

impl<R: Read> Reader<'_, R> {
    fn bytes(&mut self, n: usize) -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; n];
        self.r
            .read_exact(&mut buf)
            .map_err(|e| format!("the file ends early ({e})"))?;
        if let Some(k) = self.keep.as_mut() {
            k.extend_from_slice(&buf);
        }
        Ok(buf)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&b);
        Ok(u64::from_le_bytes(a))
    }

    fn len(&mut self, what: &str) -> Result<u64, String> {
        let n = self.u64()?;
        if n > MAX_LEN {
            return Err(format!("{what} of {n} is not plausible"));
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, String> {
        let n = self.len("a string length")?;
        let b = self.bytes(n as usize)?;
        String::from_utf8(b).map_err(|_| "a string is not UTF-8".to_owned())
    }

    /// Skips a value of type `ty`; returns it as a number when it is an unsigned integer.
    fn value(&mut self, ty: u32, depth: u32) -> Result<Option<u64>, String> {
        let fixed = match ty {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            8 => {
                self.string()?;
                return Ok(None);
            }
            9 if depth == 0 => {
                let item = self.u32()?;
                let n = self.len("an array length")?;
                for _ in 0..n {
                    self.value(item, depth + 1)?;
                }
                return Ok(None);
            }
            _ => return Err(format!("unknown metadata value type {ty}")),
        };
        let b = self.bytes(fixed)?;
        Ok(match ty {
            4 => Some(u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
            10 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&b);
                Some(u64::from_le_bytes(a))
            }
            _ => None,
        })
    }
}

pub fn align(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

/// Reads the header, the metadata and the tensor table of `r`.
pub fn read<R: Read + Seek>(r: &mut R, path: &str) -> Result<Gguf, Error> {
    let bad = |reason: String| Error::Format {
        path: path.to_owned(),
        reason,
    };
    let mut rd = Reader { r, keep: None };
    let magic = rd.bytes(4).map_err(bad)?;
    if magic != MAGIC {
        return Err(bad("it does not start with `GGUF`".to_owned()));
    }
    let version = rd.u32().map_err(bad)?;
    if !(2..=3).contains(&version) {
        return Err(bad(format!(
            "GGUF version {version} is not supported (2 or 3)"
        )));
    }
    let n_tensors = rd.len("a tensor count").map_err(bad)?;
    let kv_count = rd.len("a metadata count").map_err(bad)?;
    rd.keep = Some(Vec::new());
    let mut alignment = 32;
    for _ in 0..kv_count {
        let key = rd.string().map_err(bad)?;
        let ty = rd.u32().map_err(bad)?;
        let value = rd.value(ty, 0).map_err(bad)?;
        if key == "general.alignment" {
            alignment = value
                .filter(|a| a.is_power_of_two())
                .ok_or_else(|| bad("`general.alignment` is not a power of two".to_owned()))?;
        }
    }
    let metadata = rd.keep.take().unwrap_or_default();
    let mut tensors = Vec::with_capacity(n_tensors.min(65_536) as usize);
    for _ in 0..n_tensors {
        let name = rd.string().map_err(bad)?;
        let n_dims = rd.u32().map_err(bad)?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(bad(format!("tensor `{name}` has {n_dims} dimensions")));
        }
        let dims = (0..n_dims)
            .map(|_| rd.u64())
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        let id = rd.u32().map_err(bad)?;
        let ty = BlockType::from_id(id).ok_or_else(|| {
            bad(format!(
                "tensor `{name}` has ggml type {id}, which the requantiser cannot read"
            ))
        })?;
        let offset = rd.u64().map_err(bad)?;
        tensors.push(TensorInfo {
            name,
            dims,
            ty,
            offset,
        });
    }
    let here = r
        .stream_position()
        .map_err(|e| bad(format!("cannot seek ({e})")))?;
    Ok(Gguf {
        version,
        kv_count,
        metadata,
        tensors,
        alignment,
        data_start: align(here, alignment),
    })
}

impl Gguf {
    /// The bytes of tensor `t` in the file behind `r`.
    pub fn tensor_bytes<R: Read + Seek>(
        &self,
        r: &mut R,
        t: &TensorInfo,
        path: &str,
    ) -> Result<Vec<u8>, Error> {
        let bad = |reason: String| Error::Format {
            path: path.to_owned(),
            reason,
        };
        let n = t.ty.bytes(t.elements()).ok_or_else(|| {
            bad(format!(
                "tensor `{}` ({:?}) is not a whole number of {} blocks",
                t.name,
                t.dims,
                t.ty.name()
            ))
        })?;
        if n > MAX_LEN * 8 {
            return Err(bad(format!(
                "tensor `{}` of {n} bytes is not plausible",
                t.name
            )));
        }
        r.seek(SeekFrom::Start(self.data_start + t.offset))
            .map_err(|e| bad(format!("cannot seek to tensor `{}` ({e})", t.name)))?;
        let mut buf = vec![0u8; n as usize];
        r.read_exact(&mut buf)
            .map_err(|e| bad(format!("tensor `{}` is cut short ({e})", t.name)))?;
        Ok(buf)
    }
}

/// Writes a GGUF file: `g`'s header and metadata as they were, then `tensors` (their
/// offsets as given) and the data `write_data` writes after the aligned header.
pub fn write_header<W: Write>(w: &mut W, g: &Gguf, tensors: &[TensorInfo]) -> std::io::Result<u64> {
    let mut head = Vec::new();
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&g.version.to_le_bytes());
    head.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    head.extend_from_slice(&g.kv_count.to_le_bytes());
    head.extend_from_slice(&g.metadata);
    for t in tensors {
        head.extend_from_slice(&(t.name.len() as u64).to_le_bytes());
        head.extend_from_slice(t.name.as_bytes());
        head.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            head.extend_from_slice(&d.to_le_bytes());
        }
        head.extend_from_slice(&t.ty.id().to_le_bytes());
        head.extend_from_slice(&t.offset.to_le_bytes());
    }
    let padded = align(head.len() as u64, g.alignment);
    head.resize(padded as usize, 0);
    w.write_all(&head)?;
    Ok(padded)
}

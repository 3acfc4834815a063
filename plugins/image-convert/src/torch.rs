//! Legacy (pre-1.6, not zip) PyTorch checkpoints → named float32 tensors.
//!
//! The file is five pickles and then the storages' data: the magic number, the protocol
//! version (1001), the saving machine's `sys_info` (endianness, type sizes), the state dict
//! (an `OrderedDict` of tensors, each a view of a storage: offset, size, stride), and the
//! list of storage keys; then, for each key in that list, a little-endian i64 element count
//! followed by the elements, little-endian. A tensor's view need not be contiguous (these
//! TensorFlow-converted weights are stored in TF's memory order), so [`Checkpoint::tensor`]
//! gathers each element through the view's offset and strides.

use std::collections::HashMap;

use crate::pickle::{self, Key, PickleError, StorageType, Unpickled, Value};

/// `torch.serialization.MAGIC_NUMBER`.
const MAGIC: i128 = 0x1950_a86a_20f9_469c_fc6c;
/// `torch.serialization.PROTOCOL_VERSION`.
const PROTOCOL: i128 = 1001;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{what}: {error}")]
    Pickle {
        what: &'static str,
        error: PickleError,
    },
    #[error("{0}")]
    Layout(String),
    #[error("tensor `{name}`: {reason}")]
    Tensor { name: String, reason: String },
}

/// A tensor's view of a storage, as the state dict gives it.
#[derive(Debug)]
struct View {
    ty: StorageType,
    key: String,
    /// The storage's element count as its persistent id declares it.
    numel: u64,
    offset: u64,
    size: Vec<u64>,
    stride: Vec<u64>,
}

/// Where a storage's elements are in the file.
#[derive(Debug)]
struct Stored {
    /// Byte offset of the first element.
    start: usize,
    numel: u64,
}

/// A contiguous, row-major float32 tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A legacy checkpoint in memory: its tensors by name, read on demand.
#[derive(Debug)]
pub struct Checkpoint {
    data: Vec<u8>,
    views: Vec<(String, View)>,
    storages: HashMap<String, Stored>,
}

fn pickle_at(data: &[u8], at: usize, what: &'static str) -> Result<Unpickled, CheckpointError> {
    pickle::load(data, at).map_err(|error| CheckpointError::Pickle { what, error })
}

fn layout(reason: impl Into<String>) -> CheckpointError {
    CheckpointError::Layout(reason.into())
}

impl Checkpoint {
    /// Parses a whole checkpoint file.
    pub fn parse(data: Vec<u8>) -> Result<Checkpoint, CheckpointError> {
        if data.starts_with(b"PK\x03\x04") {
            return Err(layout(
                "it is a zip-format checkpoint (torch.save since PyTorch 1.6); only the legacy \
                 format is read",
            ));
        }
        let magic = pickle_at(&data, 0, "the magic number")?;
        if !matches!(magic.value, Value::Int(MAGIC)) {
            return Err(layout(
                "it does not start with the legacy torch magic number (0x1950a86a20f9469cfc6c)",
            ));
        }
        let protocol = pickle_at(&data, magic.end, "the protocol version")?;
        if !matches!(protocol.value, Value::Int(PROTOCOL)) {
            return Err(layout(format!(
                "the protocol version is {:?}, not {PROTOCOL}",
                protocol.value
            )));
        }
        let sys = pickle_at(&data, protocol.end, "sys_info")?;
        let little = sys
            .dict(&sys.value)
            .and_then(|d| d.get("little_endian"))
            .map(|v| matches!(v, Value::Bool(true)));
        if little != Some(true) {
            return Err(layout(
                "sys_info does not say little_endian: True (saved on a big-endian machine?)",
            ));
        }
        let state = pickle_at(&data, sys.end, "the state dict")?;
        let views = views(&state)?;
        let listed = pickle_at(&data, state.end, "the storage keys")?;
        let keys: Vec<&str> = match listed.list(&listed.value) {
            Some(l) => l
                .iter()
                .map(|k| match k {
                    Value::Str(s) => Ok(&**s),
                    other => Err(layout(format!("a storage key is {}", other.kind()))),
                })
                .collect::<Result<_, _>>()?,
            None => {
                return Err(layout(format!(
                    "the storage keys are {}, not a list",
                    listed.value.kind()
                )))
            }
        };
        let storages = storages(&data, listed.end, &keys, &views)?;
        Ok(Checkpoint {
            data,
            views,
            storages,
        })
    }

    /// The tensors' names, in the state dict's order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.views.iter().map(|(n, _)| n.as_str())
    }

    /// Whether the tensor `name` is float32 (the rest, e.g. `num_batches_tracked`, are not).
    pub fn is_float(&self, name: &str) -> bool {
        self.view(name).is_ok_and(|v| v.ty == StorageType::Float)
    }

    fn view(&self, name: &str) -> Result<&View, CheckpointError> {
        self.views
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| CheckpointError::Tensor {
                name: name.to_owned(),
                reason: "not in the checkpoint".into(),
            })
    }

    /// The float32 tensor `name`, contiguous.
    pub fn tensor(&self, name: &str) -> Result<Tensor, CheckpointError> {
        let err = |reason: String| CheckpointError::Tensor {
            name: name.to_owned(),
            reason,
        };
        let v = self.view(name)?;
        if v.ty != StorageType::Float {
            return Err(err(format!(
                "its storage is {}, not FloatStorage",
                v.ty.name()
            )));
        }
        let stored = self
            .storages
            .get(&v.key)
            .ok_or_else(|| err(format!("its storage `{}` has no data", v.key)))?;
        let shape = v
            .size
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<Result<Vec<usize>, _>>()
            .map_err(|_| err(format!("its size {:?} is too large", v.size)))?;
        let numel = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| err(format!("its size {:?} is too large", v.size)))?;
        if numel > 0 {
            let last = v
                .size
                .iter()
                .zip(&v.stride)
                .try_fold(v.offset, |at, (&d, &s)| {
                    at.checked_add((d - 1).checked_mul(s)?)
                });
            if last.is_none_or(|last| last >= stored.numel) {
                return Err(err(format!(
                    "its view (offset {}, size {:?}, stride {:?}) reaches past the {} elements \
                     of storage `{}`",
                    v.offset, v.size, v.stride, stored.numel, v.key
                )));
            }
        }
        let mut data = Vec::with_capacity(numel);
        let mut index = vec![0u64; v.size.len()];
        let mut at = v.offset;
        for _ in 0..numel {
            // `at` is at most the last element checked above, so this is inside the storage,
            // whose bytes `storages` checked are in the file.
            let byte = usize::try_from(at)
                .ok()
                .and_then(|a| a.checked_mul(4))
                .and_then(|b| b.checked_add(stored.start));
            let value = byte
                .and_then(|b| self.data.get(b..b.checked_add(4)?))
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .ok_or_else(|| {
                    err(format!(
                        "element {at} of storage `{}` is outside the file",
                        v.key
                    ))
                })?;
            data.push(f32::from_le_bytes(value));
            for d in (0..index.len()).rev() {
                index[d] += 1;
                at = at.wrapping_add(v.stride[d]);
                if index[d] < v.size[d] {
                    break;
                }
                at = at.wrapping_sub(v.stride[d].wrapping_mul(v.size[d]));
                index[d] = 0;
            }
        }
        Ok(Tensor { shape, data })
    }

    /// [`Checkpoint::tensor`], which must have `shape`.
    pub fn tensor_shaped(&self, name: &str, shape: &[usize]) -> Result<Tensor, CheckpointError> {
        let t = self.tensor(name)?;
        if t.shape != shape {
            return Err(CheckpointError::Tensor {
                name: name.to_owned(),
                reason: format!("its shape is {:?}, expected {shape:?}", t.shape),
            });
        }
        Ok(t)
    }
}

/// The state dict's tensors, in order.
fn views(state: &Unpickled) -> Result<Vec<(String, View)>, CheckpointError> {
    let dict = state.dict(&state.value).ok_or_else(|| {
        layout(format!(
            "the state dict is {}, not an OrderedDict of tensors",
            state.value.kind()
        ))
    })?;
    dict.entries
        .iter()
        .map(|(k, v)| {
            let Key::Str(name) = k else {
                return Err(layout(format!(
                    "the state dict has a key that is not a string: {k:?}"
                )));
            };
            let Value::Tensor(t) = v else {
                return Err(CheckpointError::Tensor {
                    name: name.to_string(),
                    reason: format!("it is {}, not a tensor", v.kind()),
                });
            };
            Ok((
                name.to_string(),
                View {
                    ty: t.storage.ty,
                    key: t.storage.key.clone(),
                    numel: t.storage.numel,
                    offset: t.offset,
                    size: t.size.clone(),
                    stride: t.stride.clone(),
                },
            ))
        })
        .collect()
}

/// Finds each storage's elements after the pickles, checking them against what the
/// tensors' persistent ids declared.
fn storages(
    data: &[u8],
    mut pos: usize,
    keys: &[&str],
    views: &[(String, View)],
) -> Result<HashMap<String, Stored>, CheckpointError> {
    let mut declared: HashMap<&str, (StorageType, u64)> = HashMap::new();
    for (name, v) in views {
        let got = declared.entry(&v.key).or_insert((v.ty, v.numel));
        if *got != (v.ty, v.numel) {
            return Err(CheckpointError::Tensor {
                name: name.clone(),
                reason: format!(
                    "storage `{}` is declared both as {} {} and as {} {}",
                    v.key,
                    got.1,
                    got.0.name(),
                    v.numel,
                    v.ty.name()
                ),
            });
        }
    }
    let mut stored = HashMap::new();
    for key in keys {
        let Some(&(ty, declared_numel)) = declared.get(key) else {
            return Err(layout(format!(
                "storage `{key}` is listed but no tensor uses it, so its element type is unknown"
            )));
        };
        let count = data
            .get(pos..pos.saturating_add(8))
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(i64::from_le_bytes)
            .ok_or_else(|| {
                layout(format!(
                    "storage `{key}`: the file ends at byte {pos}, before its size"
                ))
            })?;
        let numel = u64::try_from(count)
            .ok()
            .filter(|&n| n == declared_numel)
            .ok_or_else(|| {
                layout(format!(
                    "storage `{key}` at byte {pos}: {count} elements, but the state dict \
                     declares {declared_numel}"
                ))
            })?;
        let start = pos + 8;
        let end = usize::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(ty.size()))
            .and_then(|n| n.checked_add(start))
            .filter(|&e| e <= data.len())
            .ok_or_else(|| {
                layout(format!(
                    "storage `{key}` at byte {pos}: {numel} {} elements do not fit in the {} \
                     bytes of the file",
                    ty.name(),
                    data.len()
                ))
            })?;
        if stored
            .insert((*key).to_owned(), Stored { start, numel })
            .is_some()
        {
            return Err(layout(format!("storage `{key}` is listed twice")));
        }
        pos = end;
    }
    if pos != data.len() {
        return Err(layout(format!(
            "{} bytes follow the last storage (at byte {pos})",
            data.len() - pos
        )));
    }
    if let Some((name, v)) = views.iter().find(|(_, v)| !stored.contains_key(&v.key)) {
        return Err(CheckpointError::Tensor {
            name: name.clone(),
            reason: format!("its storage `{}` is not in the list of storages", v.key),
        });
    }
    Ok(stored)
}

//! A minimal pickle reader for legacy (pre-1.6) PyTorch checkpoints, and nothing else.
//!
//! It runs the protocol-2 opcodes `torch.save` emits and builds plain values from them. It
//! never imports or calls anything: the only globals it accepts are
//! `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and the `torch.*Storage`
//! types, and `REDUCE`, `BINPERSID` and `BUILD` are understood only in the shapes torch gives
//! them (an empty `OrderedDict()`, a tensor rebuilt from a storage, a storage's persistent
//! id, an `OrderedDict`'s `_metadata`). Any other opcode or global is refused with its byte
//! offset. Every read is bounds-checked, tuples nest at most [`MAX_DEPTH`] deep, and lists
//! and dicts live in an arena (a list that contains itself is an index, not a cycle).

use std::collections::HashMap;
use std::rc::Rc;

use machine::Machine;

mod machine;
mod objects;
#[cfg(test)]
mod tests;

/// How deep tuples may nest (torch's nest 2 deep).
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, thiserror::Error)]
#[error("pickle byte {offset}: {reason}")]
pub struct PickleError {
    /// The offset of the opcode in the file.
    pub offset: usize,
    pub reason: String,
}

/// A storage class, `torch.FloatStorage` and so on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageType {
    Float,
    Double,
    Half,
    BFloat16,
    Long,
    Int,
    Short,
    Char,
    Byte,
    Bool,
}

impl StorageType {
    const ALL: [(&'static str, StorageType); 10] = [
        ("FloatStorage", StorageType::Float),
        ("DoubleStorage", StorageType::Double),
        ("HalfStorage", StorageType::Half),
        ("BFloat16Storage", StorageType::BFloat16),
        ("LongStorage", StorageType::Long),
        ("IntStorage", StorageType::Int),
        ("ShortStorage", StorageType::Short),
        ("CharStorage", StorageType::Char),
        ("ByteStorage", StorageType::Byte),
        ("BoolStorage", StorageType::Bool),
    ];

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            StorageType::Double | StorageType::Long => 8,
            StorageType::Float | StorageType::Int => 4,
            StorageType::Half | StorageType::BFloat16 | StorageType::Short => 2,
            StorageType::Char | StorageType::Byte | StorageType::Bool => 1,
        }
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("?", |(n, _)| n)
    }
}

/// The globals a legacy checkpoint may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Global {
    OrderedDict,
    RebuildTensor,
    Storage(StorageType),
}

/// A storage as its persistent id describes it.
#[derive(Debug, PartialEq, Eq)]
pub struct StorageRef {
    pub ty: StorageType,
    /// The key its data is stored under after the pickles.
    pub key: String,
    /// How many elements it has.
    pub numel: u64,
}

/// A tensor: a view of a storage.
#[derive(Debug)]
pub struct TensorRef {
    pub storage: Rc<StorageRef>,
    pub offset: u64,
    pub size: Vec<u64>,
    pub stride: Vec<u64>,
}

/// A tuple and how deep it nests.
#[derive(Debug)]
pub struct Tuple {
    depth: usize,
    pub items: Vec<Value>,
}

#[derive(Clone, Debug)]
pub enum Value {
    None,
    Bool(bool),
    Int(i128),
    Str(Rc<str>),
    Tuple(Rc<Tuple>),
    /// Index of a list in the arena.
    List(usize),
    /// Index of a dict in the arena.
    Dict(usize),
    Global(Global),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
}

impl Value {
    /// What it is, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "a bool",
            Value::Int(_) => "an int",
            Value::Str(_) => "a string",
            Value::Tuple(_) => "a tuple",
            Value::List(_) => "a list",
            Value::Dict(_) => "a dict",
            Value::Global(_) => "a class",
            Value::Storage(_) => "a storage",
            Value::Tensor(_) => "a tensor",
        }
    }

    fn depth(&self) -> usize {
        match self {
            Value::Tuple(t) => t.depth,
            _ => 0,
        }
    }
}

/// A dict key: torch's dicts are keyed by strings (and ints).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Str(Rc<str>),
    Int(i128),
}

/// A dict that keeps its insertion order, as `OrderedDict` (and Python's `dict`) do.
#[derive(Debug, Default)]
pub struct Dict {
    pub entries: Vec<(Key, Value)>,
    index: HashMap<Key, usize>,
}

impl Dict {
    fn insert(&mut self, key: Key, value: Value) {
        match self.index.get(&key) {
            Some(&i) => self.entries[i].1 = value,
            None => {
                self.index.insert(key.clone(), self.entries.len());
                self.entries.push((key, value));
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        let i = *self.index.get(&Key::Str(Rc::from(key)))?;
        self.entries.get(i).map(|(_, v)| v)
    }
}

#[derive(Debug)]
enum Container {
    List(Vec<Value>),
    Dict(Dict),
}

/// One unpickled object, the lists and dicts it refers to, and where its pickle ended.
#[derive(Debug)]
pub struct Unpickled {
    pub value: Value,
    arena: Vec<Container>,
    /// The offset just after its `STOP`.
    pub end: usize,
}

impl Unpickled {
    pub fn dict(&self, v: &Value) -> Option<&Dict> {
        match (v, self.arena.get(index_of(v)?)) {
            (Value::Dict(_), Some(Container::Dict(d))) => Some(d),
            _ => None,
        }
    }

    pub fn list(&self, v: &Value) -> Option<&[Value]> {
        match (v, self.arena.get(index_of(v)?)) {
            (Value::List(_), Some(Container::List(l))) => Some(l),
            _ => None,
        }
    }
}

fn index_of(v: &Value) -> Option<usize> {
    match v {
        Value::List(i) | Value::Dict(i) => Some(*i),
        _ => None,
    }
}

/// Reads the pickle that starts at `start` in `data`.
pub fn load(data: &[u8], start: usize) -> Result<Unpickled, PickleError> {
    let mut m = Machine {
        data,
        pos: start,
        op_at: start,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        arena: Vec::new(),
    };
    let value = m.run()?;
    Ok(Unpickled {
        value,
        arena: m.arena,
        end: m.pos,
    })
}

//! What torch's pickles build: the globals they may name, and the shapes `REDUCE`,
//! `BINPERSID` and `BUILD` take in them. Anything else is refused.

use std::rc::Rc;

use super::machine::Machine;
use super::{Container, Dict, Global, PickleError, StorageRef, StorageType, TensorRef, Value};

impl Machine<'_> {
    pub(super) fn global(&mut self) -> Result<Value, PickleError> {
        let module = self.line()?;
        let name = self.line()?;
        let g = match (module.as_str(), name.as_str()) {
            ("collections", "OrderedDict") => Some(Global::OrderedDict),
            ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensor),
            ("torch", n) => StorageType::ALL
                .iter()
                .find(|(s, _)| *s == n)
                .map(|(_, t)| Global::Storage(*t)),
            _ => None,
        };
        g.map(Value::Global).ok_or_else(|| {
            self.err(format!(
                "refusing GLOBAL `{module}.{name}`: a torch checkpoint names only \
                 collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch.*Storage"
            ))
        })
    }

    pub(super) fn reduce(&mut self, callable: Value, args: Value) -> Result<Value, PickleError> {
        let Value::Tuple(args) = args else {
            return Err(self.err(format!("REDUCE with {} for arguments", args.kind())));
        };
        match callable {
            Value::Global(Global::OrderedDict) if args.items.is_empty() => {
                Ok(self.new_container(Container::Dict(Dict::default())))
            }
            Value::Global(Global::RebuildTensor) => self.rebuild_tensor(&args.items),
            other => Err(self.err(format!(
                "REDUCE calls {} with {} arguments; a torch checkpoint only calls OrderedDict() \
                 and _rebuild_tensor_v2",
                other.kind(),
                args.items.len()
            ))),
        }
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`.
    fn rebuild_tensor(&self, args: &[Value]) -> Result<Value, PickleError> {
        let bad = |what: &str| self.err(format!("_rebuild_tensor_v2: {what}"));
        let [storage, offset, size, stride, requires_grad, hooks, rest @ ..] = args else {
            return Err(bad(&format!("{} arguments, not 6", args.len())));
        };
        let Value::Storage(storage) = storage else {
            return Err(bad(&format!("the storage is {}", storage.kind())));
        };
        let offset = self.unsigned(offset, "the storage offset")?;
        let size = self.dims(size, "the size")?;
        let stride = self.dims(stride, "the stride")?;
        if size.len() != stride.len() {
            return Err(bad(&format!(
                "{} sizes but {} strides",
                size.len(),
                stride.len()
            )));
        }
        if !matches!(requires_grad, Value::Bool(_)) {
            return Err(bad(&format!("requires_grad is {}", requires_grad.kind())));
        }
        if !matches!(hooks, Value::Dict(_) | Value::None) {
            return Err(bad(&format!("the backward hooks are {}", hooks.kind())));
        }
        if !matches!(rest, [] | [Value::None] | [Value::Dict(_)]) {
            return Err(bad(&format!("{} arguments, not 6", args.len())));
        }
        Ok(Value::Tensor(Rc::new(TensorRef {
            storage: storage.clone(),
            offset,
            size,
            stride,
        })))
    }

    fn unsigned(&self, v: &Value, what: &str) -> Result<u64, PickleError> {
        match v {
            Value::Int(i) => u64::try_from(*i)
                .map_err(|_| self.err(format!("{what} is {i}, not a non-negative integer"))),
            other => Err(self.err(format!("{what} is {}, not an integer", other.kind()))),
        }
    }

    fn dims(&self, v: &Value, what: &str) -> Result<Vec<u64>, PickleError> {
        let Value::Tuple(t) = v else {
            return Err(self.err(format!("{what} is {}, not a tuple", v.kind())));
        };
        t.items.iter().map(|d| self.unsigned(d, what)).collect()
    }

    /// `('storage', torch.XStorage, key, location, numel, view_metadata)`.
    pub(super) fn persistent(&self, pid: Value) -> Result<Value, PickleError> {
        let bad = |what: String| self.err(format!("persistent id: {what}"));
        let Value::Tuple(t) = pid else {
            return Err(bad(format!("{}, not a tuple", pid.kind())));
        };
        let [Value::Str(tag), ty, key, location, numel, view] = t.items.as_slice() else {
            return Err(bad(format!(
                "a tuple of {}, not ('storage', type, key, location, numel, None)",
                t.items.len()
            )));
        };
        if &**tag != "storage" {
            return Err(bad(format!("`{tag}`, not a storage")));
        }
        let Value::Global(Global::Storage(ty)) = ty else {
            return Err(bad(format!("the storage type is {}", ty.kind())));
        };
        let (Value::Str(key), Value::Str(_)) = (key, location) else {
            return Err(bad("the key and location are not strings".into()));
        };
        if !matches!(view, Value::None) {
            return Err(bad("a storage view (torch < 0.4) is not supported".into()));
        }
        Ok(Value::Storage(Rc::new(StorageRef {
            ty: *ty,
            key: key.to_string(),
            numel: self.unsigned(numel, "the storage size")?,
        })))
    }

    /// `BUILD` sets an object's state: torch only sets an `OrderedDict`'s `_metadata`, which
    /// the conversion does not need, so it is checked and dropped.
    pub(super) fn build(&mut self, state: Value) -> Result<(), PickleError> {
        let i = self.top_index()?;
        match (self.arena.get(i), &state) {
            (Some(Container::Dict(_)), Value::Dict(_) | Value::None) => Ok(()),
            _ => Err(self.err(format!(
                "BUILD with {} on something that is not an OrderedDict",
                state.kind()
            ))),
        }
    }
}

//! The pickle machine: the stack, the marks, the memo and the opcodes.

use std::collections::HashMap;
use std::rc::Rc;

use super::{index_of, Container, Dict, Key, PickleError, Tuple, Value, MAX_DEPTH};
pub(super) struct Machine<'a> {
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
    /// Where the current opcode started, for errors.
    pub(super) op_at: usize,
    pub(super) stack: Vec<Value>,
    pub(super) marks: Vec<usize>,
    pub(super) memo: HashMap<u32, Value>,
    pub(super) arena: Vec<Container>,
}

impl<'a> Machine<'a> {
    pub(super) fn err(&self, reason: impl Into<String>) -> PickleError {
        PickleError {
            offset: self.op_at,
            reason: reason.into(),
        }
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let Some(end) = end else {
            return Err(self.err(format!(
                "the data ends at byte {} but the opcode needs {n} more bytes",
                self.data.len()
            )));
        };
        let data: &'a [u8] = self.data;
        let bytes = &data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(super) fn line(&mut self) -> Result<String, PickleError> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let Some(n) = rest.iter().take(256).position(|&b| b == b'\n') else {
            return Err(self.err("a GLOBAL name has no end of line within 256 bytes"));
        };
        let text = String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| self.err("a GLOBAL name is not UTF-8"))?;
        self.pos += 1;
        Ok(text)
    }

    pub(super) fn pop(&mut self) -> Result<Value, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("the stack is empty"));
        }
        self.stack
            .pop()
            .ok_or_else(|| self.err("the stack is empty"))
    }

    pub(super) fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| self.err("no MARK to pop to"))?;
        Ok(self.stack.split_off(mark.min(self.stack.len())))
    }

    pub(super) fn top_index(&self) -> Result<usize, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        match self.stack.last() {
            Some(v) if self.stack.len() > floor => index_of(v)
                .ok_or_else(|| self.err(format!("expected a list or dict, found {}", v.kind()))),
            _ => Err(self.err("the stack is empty")),
        }
    }

    pub(super) fn tuple(&self, items: Vec<Value>) -> Result<Value, PickleError> {
        let depth = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return Err(self.err(format!("tuples nest deeper than {MAX_DEPTH}")));
        }
        Ok(Value::Tuple(Rc::new(Tuple { depth, items })))
    }

    pub(super) fn append(&mut self, items: Vec<Value>) -> Result<(), PickleError> {
        let i = self.top_index()?;
        match self.arena.get_mut(i) {
            Some(Container::List(l)) => {
                l.extend(items);
                Ok(())
            }
            _ => Err(self.err("APPEND to something that is not a list")),
        }
    }

    pub(super) fn set_items(&mut self, items: Vec<Value>) -> Result<(), PickleError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.err("SETITEMS with a key and no value"));
        }
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            let key = match k {
                Value::Str(s) => Key::Str(s),
                Value::Int(i) => Key::Int(i),
                other => return Err(self.err(format!("a dict key is {}", other.kind()))),
            };
            pairs.push((key, v));
        }
        let i = self.top_index()?;
        match self.arena.get_mut(i) {
            Some(Container::Dict(d)) => {
                for (k, v) in pairs {
                    d.insert(k, v);
                }
                Ok(())
            }
            _ => Err(self.err("SETITEM on something that is not a dict")),
        }
    }

    pub(super) fn new_container(&mut self, c: Container) -> Value {
        let i = self.arena.len();
        let v = match c {
            Container::List(_) => Value::List(i),
            Container::Dict(_) => Value::Dict(i),
        };
        self.arena.push(c);
        v
    }

    pub(super) fn memo_get(&self, i: u32) -> Result<Value, PickleError> {
        self.memo
            .get(&i)
            .cloned()
            .ok_or_else(|| self.err(format!("memo entry {i} was never stored")))
    }

    pub(super) fn memo_put(&mut self, i: u32) -> Result<(), PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        match self.stack.last() {
            Some(v) if self.stack.len() > floor => {
                self.memo.insert(i, v.clone());
                Ok(())
            }
            _ => Err(self.err("PUT with an empty stack")),
        }
    }

    pub(super) fn run(&mut self) -> Result<Value, PickleError> {
        loop {
            self.op_at = self.pos;
            let [op] = self.array::<1>()?;
            let v = match op {
                0x80 => {
                    let [p] = self.array::<1>()?;
                    if p > 2 {
                        return Err(
                            self.err(format!("pickle protocol {p}; torch's legacy format uses 2"))
                        );
                    }
                    continue;
                }
                b'.' => {
                    let v = self.pop()?;
                    if !self.stack.is_empty() || !self.marks.is_empty() {
                        return Err(self.err("STOP with values left on the stack"));
                    }
                    return Ok(v);
                }
                b'(' => {
                    self.marks.push(self.stack.len());
                    continue;
                }
                b')' => self.tuple(Vec::new())?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.tuple(items)?
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = (0..n).map(|_| self.pop()).collect::<Result<Vec<_>, _>>()?;
                    items.reverse();
                    self.tuple(items)?
                }
                b']' => self.new_container(Container::List(Vec::new())),
                b'}' => self.new_container(Container::Dict(Dict::default())),
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                    continue;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                    continue;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                    continue;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                    continue;
                }
                b'q' => {
                    let [i] = self.array::<1>()?;
                    self.memo_put(u32::from(i))?;
                    continue;
                }
                b'r' => {
                    let i = u32::from_le_bytes(self.array()?);
                    self.memo_put(i)?;
                    continue;
                }
                b'h' => {
                    let [i] = self.array::<1>()?;
                    self.memo_get(u32::from(i))?
                }
                b'j' => {
                    let i = u32::from_le_bytes(self.array()?);
                    self.memo_get(i)?
                }
                b'J' => Value::Int(i32::from_le_bytes(self.array()?).into()),
                b'K' => Value::Int(self.array::<1>()?[0].into()),
                b'M' => Value::Int(u16::from_le_bytes(self.array()?).into()),
                0x8a => {
                    let [n] = self.array::<1>()?;
                    Value::Int(self.long(usize::from(n))?)
                }
                b'N' => Value::None,
                0x88 => Value::Bool(true),
                0x89 => Value::Bool(false),
                b'X' => {
                    let n = u32::from_le_bytes(self.array()?) as usize;
                    let bytes = self.take(n)?;
                    let s = std::str::from_utf8(bytes)
                        .map_err(|_| self.err("a BINUNICODE string is not UTF-8"))?;
                    Value::Str(Rc::from(s))
                }
                b'c' => self.global()?,
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.reduce(callable, args)?
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.persistent(pid)?
                }
                b'b' => {
                    let state = self.pop()?;
                    self.build(state)?;
                    continue;
                }
                other => {
                    return Err(self.err(format!(
                        "opcode 0x{other:02x} ({:?}) is not one a legacy torch checkpoint uses",
                        char::from(other)
                    )))
                }
            };
            self.stack.push(v);
        }
    }

    /// A little-endian two's complement integer of `n` bytes (LONG1).
    fn long(&mut self, n: usize) -> Result<i128, PickleError> {
        if n > 16 {
            return Err(self.err(format!("a {n}-byte integer is too large")));
        }
        let bytes = self.take(n)?;
        let negative = bytes.last().is_some_and(|b| b & 0x80 != 0);
        let mut buf = [if negative { 0xff } else { 0 }; 16];
        buf[..n].copy_from_slice(bytes);
        Ok(i128::from_le_bytes(buf))
    }
}

//! A byte-at-a-time JSON reader that only accepts text valid under a compiled schema, and
//! knows the shortest text that completes what it has read.
//!
//! The decoder clones a cursor to try each candidate token ([`Cursor::accepts`]), feeds the
//! chosen one ([`Cursor::feed`]), and when the token budget runs low writes
//! [`Cursor::completion`]. It also notices the two ways small models loop inside
//! structured output: an array item equal to an earlier one ([`Cursor::repeated_item`]) and
//! a string that repeats its own tail ([`Cursor::repeated_tail`]).

use std::sync::Arc;

use super::schema::{Kind, Node, ObjectSchema};

/// Most whitespace bytes in a row outside strings, and most newlines among them: enough for
/// pretty-printed JSON, not for a model that only writes blank lines.
const MAX_WS_RUN: u16 = 40;
const MAX_NEWLINES: u16 = 2;
/// Most digits in a number.
const MAX_DIGITS: u16 = 18;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Obj {
    Open,
    Key,
    AfterKey(usize),
    AfterValue,
    AfterComma,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Arr {
    Open,
    AfterItem,
    AfterComma,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Esc {
    None,
    Backslash,
    Unicode(u8),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Num {
    Start,
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    E,
    ESign,
    Exp,
}

impl Num {
    pub(super) fn complete(self) -> bool {
        matches!(self, Num::Zero | Num::Int | Num::Frac | Num::Exp)
    }
}

#[derive(Clone, Debug)]
pub(super) enum Frame {
    /// A value not started yet.
    Value(Arc<Node>),
    Object {
        node: Arc<Node>,
        kind: usize,
        seen: Vec<bool>,
        state: Obj,
        /// The key written so far, quote included (state `Key`).
        key: Vec<u8>,
        /// The property whose value is being written, or was last.
        current: Option<usize>,
    },
    Array {
        node: Arc<Node>,
        kind: usize,
        /// Items started.
        count: usize,
        state: Arr,
        /// Where the current item's text starts, and where the previous item's ended.
        item_start: usize,
        prev_end: usize,
        items: Vec<Vec<u8>>,
        /// Only `]` may follow (a repeated item was cut).
        closing: bool,
    },
    Str {
        min: usize,
        max: Option<usize>,
        chars: usize,
        esc: Esc,
        /// Continuation bytes the last character still needs (UTF-8).
        utf8: u8,
        /// Where the content (after the opening quote) starts.
        start: usize,
        /// Only the closing quote may follow (a repeated tail was cut).
        closing: bool,
    },
    Number {
        integer: bool,
        state: Num,
        digits: u16,
    },
    Literal {
        cands: Vec<String>,
        pos: usize,
    },
    /// Free text: any bytes, never complete (no schema).
    Free,
}

enum Step {
    /// The byte belongs to this frame, which goes on.
    Consumed,
    /// The byte ends this frame.
    Closed,
    /// The frame was already complete: it ends, and the byte goes to its parent.
    EndsBefore,
    /// The byte belongs to this frame, and a child value starts after it (a key's colon).
    Child(Frame),
    /// A child value starts with this byte (an array item).
    Start(Frame),
    /// (A not-yet-started value.) The byte starts this frame, which replaces it; `true`
    /// when the byte also ends it (a one-byte literal).
    Become(Frame, bool),
    Reject,
}

#[derive(Clone, Debug)]
pub struct Cursor {
    stack: Vec<Frame>,
    text: Vec<u8>,
    done: bool,
    ws_run: u16,
    newlines: u16,
    /// Where to cut the text when the last item completed was a repeat.
    repeated: Option<usize>,
    /// Strings closed since [`take_closed`](Self::take_closed): content start, closing
    /// quote, top-level field.
    closed: Vec<(usize, usize, Option<String>)>,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl Cursor {
    pub fn new(root: Arc<Node>) -> Self {
        Cursor {
            stack: vec![Frame::Value(root)],
            text: Vec::new(),
            done: false,
            ws_run: 0,
            newlines: 0,
            repeated: None,
            closed: Vec::new(),
        }
    }

    /// A cursor for free text: it accepts any bytes and the text may end anywhere.
    pub fn free() -> Self {
        Cursor {
            stack: vec![Frame::Free],
            ..Cursor::new(Arc::new(Node {
                kinds: Vec::new(),
                shortest: String::new(),
            }))
        }
    }

    /// Free text rather than JSON.
    pub fn is_free(&self) -> bool {
        matches!(self.stack.as_slice(), [Frame::Free])
    }

    /// The top-level property being written (the root object's), unquoted.
    pub fn field(&self) -> Option<String> {
        let Some(Frame::Object {
            node,
            kind,
            current: Some(i),
            ..
        }) = self.stack.first()
        else {
            return None;
        };
        let Kind::Object(o) = &node.kinds[*kind] else {
            return None;
        };
        serde_json::from_str(&o.props.get(*i)?.0).ok()
    }

    /// The open string's content start, when a string is being written.
    pub fn open_string(&self) -> Option<usize> {
        match self.stack.last() {
            Some(Frame::Str { start, .. }) => Some(*start),
            _ => None,
        }
    }

    /// The strings closed since the last call: content start, closing quote, field.
    pub fn take_closed(&mut self) -> Vec<(usize, usize, Option<String>)> {
        std::mem::take(&mut self.closed)
    }

    /// What has been fed.
    pub fn text(&self) -> &[u8] {
        &self.text
    }

    /// The document is complete: nothing more may be written.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The text could end here (a complete document, or a complete top-level number or
    /// literal that more bytes could still extend).
    pub fn can_end(&self) -> bool {
        self.done
            || match self.stack.as_slice() {
                [Frame::Number { state, .. }] => state.complete(),
                [Frame::Literal { cands, pos }] => cands.iter().any(|c| c.len() == *pos),
                [Frame::Free] => true,
                _ => false,
            }
    }

    /// Whether `bytes` could be fed next, without feeding them.
    #[cfg(test)]
    pub fn accepts(&self, bytes: &[u8]) -> bool {
        let mut probe = self.clone();
        bytes.iter().all(|b| probe.feed(*b))
    }

    pub fn feed_all(&mut self, bytes: &[u8]) -> bool {
        bytes.iter().all(|b| self.feed(*b))
    }

    /// Feeds one byte; false (and nothing changes that matters) if the schema forbids it.
    pub fn feed(&mut self, b: u8) -> bool {
        if self.done {
            return false;
        }
        if is_ws(b) && self.whitespace_allowed() {
            self.ws_run += 1;
            self.newlines += u16::from(b == b'\n');
            if self.ws_run > MAX_WS_RUN || self.newlines > MAX_NEWLINES {
                return false;
            }
            self.text.push(b);
            return true;
        }
        loop {
            let Some(top) = self.stack.last_mut() else {
                return false;
            };
            match step(top, b, self.text.len()) {
                Step::Reject => return false,
                Step::Consumed => break,
                Step::Child(frame) => {
                    self.stack.push(frame);
                    break;
                }
                Step::Start(frame) => self.stack.push(frame),
                Step::Become(frame, closed) => {
                    self.stack.pop();
                    if closed {
                        self.close(b);
                        return true;
                    }
                    self.stack.push(frame);
                    break;
                }
                Step::Closed => {
                    if let Some(Frame::Str { start, .. }) = self.stack.pop() {
                        let field = self.field();
                        self.closed.push((start, self.text.len(), field));
                    }
                    self.close(b);
                    return true;
                }
                Step::EndsBefore => {
                    self.stack.pop();
                    self.child_done();
                    if self.done {
                        return false;
                    }
                    if is_ws(b) {
                        return self.feed(b);
                    }
                }
            }
        }
        self.text.push(b);
        self.ws_run = 0;
        self.newlines = 0;
        true
    }

    /// `b` ended the frame just popped.
    fn close(&mut self, b: u8) {
        self.text.push(b);
        self.child_done();
        self.ws_run = 0;
        self.newlines = 0;
    }

    fn whitespace_allowed(&self) -> bool {
        match self.stack.last() {
            Some(Frame::Value(_)) | Some(Frame::Array { .. }) => true,
            Some(Frame::Object { state, .. }) => *state != Obj::Key,
            _ => false,
        }
    }

    /// A value below the top has ended at the current end of the text.
    fn child_done(&mut self) {
        let end = self.text.len();
        let Some(parent) = self.stack.last_mut() else {
            self.done = true;
            return;
        };
        if let Frame::Array {
            node,
            kind,
            count,
            item_start,
            prev_end,
            items,
            ..
        } = parent
        {
            let item = self.text[*item_start..end].trim_ascii().to_vec();
            let min = match &node.kinds[*kind] {
                Kind::Array(a) => a.min,
                _ => 0,
            };
            // A repeat is cut only where the array may end without it.
            if items.contains(&item) && *count > min {
                self.repeated = Some(*prev_end);
            } else {
                items.push(item);
            }
            *prev_end = end;
        }
    }

    /// After [`feed`](Self::feed)ing a token: where to cut the text if that token finished
    /// an array item equal to an earlier one (the cut drops it and its comma).
    pub fn repeated_item(&mut self) -> Option<usize> {
        self.repeated.take()
    }

    /// Where to cut the text if the open string ends with one stretch written three times
    /// over (the cut keeps the first).
    pub fn repeated_tail(&self) -> Option<usize> {
        let Some(Frame::Str {
            start,
            esc: Esc::None,
            closing: false,
            ..
        }) = self.stack.last()
        else {
            return None;
        };
        let content = &self.text[*start..];
        let n = content.len();
        for unit in 2..=64usize {
            if unit * 3 > n {
                break;
            }
            if unit * 3 < 12 {
                continue;
            }
            let a = &content[n - unit..];
            if a == &content[n - 2 * unit..n - unit] && a == &content[n - 3 * unit..n - 2 * unit] {
                let keep = content[..n - 2 * unit].trim_ascii_end().len();
                let cut_at = content.get(keep).copied().unwrap_or(b' ');
                if (0x80..0xC0).contains(&cut_at) || content[..keep].ends_with(b"\\") {
                    return None;
                }
                return Some(*start + keep);
            }
        }
        None
    }

    /// Rebuilds the cursor on `text[..cut]` and closes the innermost open string
    /// (`string`) or array: after a repetition, the next byte must end it.
    pub fn cut_and_close(&self, root: Arc<Node>, cut: usize, string: bool) -> Option<Cursor> {
        let mut c = Cursor::new(root);
        if !c.feed_all(self.text.get(..cut)?) {
            return None;
        }
        let target = c.stack.iter_mut().rev().find(|f| {
            if string {
                matches!(f, Frame::Str { esc: Esc::None, .. })
            } else {
                matches!(f, Frame::Array { .. })
            }
        })?;
        match target {
            Frame::Str { closing, .. } | Frame::Array { closing, .. } => *closing = true,
            _ => return None,
        }
        Some(c)
    }

    /// The shortest text that completes the document from here (bytes: it may first have
    /// to finish a character whose first bytes were written).
    pub fn completion(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(Frame::Str { utf8, .. }) = self.stack.last() {
            // Valid continuation bytes; after E0 and F0 the second byte must be high
            // enough not to spell the character in too few bytes.
            let lead_at = self.text.iter().rposition(|b| *b >= 0xC0);
            for i in 0..*utf8 {
                let second = i == 0 && lead_at == Some(self.text.len() - 1);
                out.push(match lead_at.map(|p| self.text[p]) {
                    Some(0xE0) if second => 0xA0,
                    Some(0xF0) if second => 0x90,
                    _ => 0x80,
                });
            }
        }
        let mut rest = String::new();
        for frame in self.stack.iter().rev() {
            super::completion::complete(frame, &mut rest);
        }
        out.extend_from_slice(rest.as_bytes());
        out
    }
}

/// One byte for the top frame.
fn step(frame: &mut Frame, b: u8, at: usize) -> Step {
    match frame {
        Frame::Value(node) => {
            let Some((i, kind)) = node.kinds.iter().enumerate().find(|(_, k)| starts(k, b)) else {
                return Step::Reject;
            };
            let mut frame = match kind {
                Kind::Object(o) => Frame::Object {
                    node: node.clone(),
                    kind: i,
                    seen: vec![false; o.props.len()],
                    state: Obj::Open,
                    key: Vec::new(),
                    current: None,
                },
                Kind::Array(_) => Frame::Array {
                    node: node.clone(),
                    kind: i,
                    count: 0,
                    state: Arr::Open,
                    item_start: at + 1,
                    prev_end: at + 1,
                    items: Vec::new(),
                    closing: false,
                },
                Kind::String { min, max } => Frame::Str {
                    min: *min,
                    max: *max,
                    chars: 0,
                    esc: Esc::None,
                    utf8: 0,
                    start: at + 1,
                    closing: false,
                },
                Kind::Number { integer } => Frame::Number {
                    integer: *integer,
                    state: Num::Start,
                    digits: 0,
                },
                Kind::Literals(l) => Frame::Literal {
                    cands: l.clone(),
                    pos: 0,
                },
            };
            // Brackets and quotes open their frame; a digit or letter is its first byte.
            match &frame {
                Frame::Number { .. } | Frame::Literal { .. } => match step(&mut frame, b, at) {
                    Step::Consumed => Step::Become(frame, false),
                    Step::Closed => Step::Become(frame, true),
                    _ => Step::Reject,
                },
                _ => Step::Become(frame, false),
            }
        }
        Frame::Object {
            node,
            kind,
            seen,
            state,
            key,
            current,
        } => {
            let Kind::Object(o) = &node.kinds[*kind] else {
                return Step::Reject;
            };
            if let Obj::AfterKey(i) = *state {
                if b == b':' {
                    *current = Some(i);
                }
            }
            object_step(o, seen, state, key, b)
        }
        Frame::Free => Step::Consumed,
        Frame::Array {
            node,
            kind,
            count,
            state,
            item_start,
            closing,
            ..
        } => {
            let Kind::Array(a) = &node.kinds[*kind] else {
                return Step::Reject;
            };
            match (*state, b) {
                (Arr::Open, b']') if a.min == 0 => Step::Closed,
                (Arr::AfterItem, b']') if *count >= a.min => Step::Closed,
                (Arr::AfterItem, b',') if !*closing && a.max.is_none_or(|m| *count < m) => {
                    *state = Arr::AfterComma;
                    Step::Consumed
                }
                (Arr::Open | Arr::AfterComma, _) if !*closing && starts_node(&a.items, b) => {
                    *state = Arr::AfterItem;
                    *count += 1;
                    *item_start = at;
                    Step::Start(Frame::Value(a.items.clone()))
                }
                _ => Step::Reject,
            }
        }
        Frame::Str {
            min,
            max,
            chars,
            esc,
            closing,
            utf8,
            ..
        } => match *esc {
            // Inside a multi-byte character only its continuation bytes may come.
            Esc::None if *utf8 > 0 => {
                if (0x80..0xC0).contains(&b) {
                    *utf8 -= 1;
                    Step::Consumed
                } else {
                    Step::Reject
                }
            }
            Esc::Backslash => match b {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                    *esc = Esc::None;
                    *chars += 1;
                    Step::Consumed
                }
                b'u' => {
                    *esc = Esc::Unicode(0);
                    Step::Consumed
                }
                _ => Step::Reject,
            },
            Esc::Unicode(n) if b.is_ascii_hexdigit() => {
                *esc = if n == 3 {
                    *chars += 1;
                    Esc::None
                } else {
                    Esc::Unicode(n + 1)
                };
                Step::Consumed
            }
            Esc::Unicode(_) => Step::Reject,
            Esc::None => {
                if b == b'"' {
                    return if *chars >= *min {
                        Step::Closed
                    } else {
                        Step::Reject
                    };
                }
                if *closing || b < 0x20 {
                    return Step::Reject;
                }
                let follow = match b {
                    0x00..0x80 => 0,
                    0xC2..0xE0 => 1,
                    0xE0..0xF0 => 2,
                    0xF0..0xF5 => 3,
                    // A stray continuation byte, or one that never starts UTF-8.
                    _ => return Step::Reject,
                };
                if max.is_some_and(|m| *chars >= m) {
                    return Step::Reject;
                }
                if b == b'\\' {
                    *esc = Esc::Backslash;
                } else {
                    *chars += 1;
                    *utf8 = follow;
                }
                Step::Consumed
            }
        },
        Frame::Number {
            integer,
            state,
            digits,
        } => {
            let digit = b.is_ascii_digit();
            if digit {
                if *digits >= MAX_DIGITS {
                    return Step::Reject;
                }
                *digits += 1;
            }
            let next = match (*state, b) {
                (Num::Start, b'-') => Num::Minus,
                (Num::Start | Num::Minus, b'0') => Num::Zero,
                (Num::Start | Num::Minus, _) if digit => Num::Int,
                (Num::Int, _) if digit => Num::Int,
                (Num::Zero | Num::Int, b'.') if !*integer => Num::Dot,
                (Num::Dot | Num::Frac, _) if digit => Num::Frac,
                (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') if !*integer => Num::E,
                (Num::E, b'+' | b'-') => Num::ESign,
                (Num::E | Num::ESign | Num::Exp, _) if digit => Num::Exp,
                (s, _) if s.complete() && !digit => return Step::EndsBefore,
                _ => return Step::Reject,
            };
            *state = next;
            Step::Consumed
        }
        Frame::Literal { cands, pos } => {
            let p = *pos;
            if cands.iter().any(|c| c.as_bytes().get(p) == Some(&b)) {
                cands.retain(|c| c.as_bytes().get(p) == Some(&b));
                *pos += 1;
                if cands.iter().all(|c| c.len() == *pos) {
                    Step::Closed
                } else {
                    Step::Consumed
                }
            } else if cands.iter().any(|c| c.len() == p) {
                Step::EndsBefore
            } else {
                Step::Reject
            }
        }
    }
}

fn object_step(
    o: &ObjectSchema,
    seen: &mut [bool],
    state: &mut Obj,
    key: &mut Vec<u8>,
    b: u8,
) -> Step {
    let all_required = o.required.iter().zip(seen.iter()).all(|(r, s)| !*r || *s);
    let any_unseen = seen.iter().any(|s| !*s);
    match (*state, b) {
        (Obj::Open | Obj::AfterValue, b'}') if all_required => Step::Closed,
        (Obj::AfterValue, b',') if any_unseen => {
            *state = Obj::AfterComma;
            Step::Consumed
        }
        (Obj::Open | Obj::AfterComma, b'"') => {
            *state = Obj::Key;
            key.clear();
            key.push(b);
            Step::Consumed
        }
        (Obj::Key, _) => {
            key.push(b);
            let matching = o
                .props
                .iter()
                .enumerate()
                .filter(|(i, (name, _))| !seen[*i] && name.as_bytes().starts_with(key))
                .map(|(i, (name, _))| (i, name.len()))
                .collect::<Vec<_>>();
            match matching.iter().find(|(_, len)| *len == key.len()) {
                Some((i, _)) => *state = Obj::AfterKey(*i),
                None if !matching.is_empty() => {}
                None => {
                    key.pop();
                    return Step::Reject;
                }
            }
            Step::Consumed
        }
        (Obj::AfterKey(i), b':') => {
            seen[i] = true;
            *state = Obj::AfterValue;
            match o.props.get(i) {
                Some((_, node)) => Step::Child(Frame::Value(node.clone())),
                None => Step::Reject,
            }
        }
        _ => Step::Reject,
    }
}

fn starts(kind: &Kind, b: u8) -> bool {
    match kind {
        Kind::Object(_) => b == b'{',
        Kind::Array(_) => b == b'[',
        Kind::String { .. } => b == b'"',
        Kind::Number { .. } => b == b'-' || b.is_ascii_digit(),
        Kind::Literals(l) => l.iter().any(|t| t.as_bytes().first() == Some(&b)),
    }
}

fn starts_node(node: &Node, b: u8) -> bool {
    node.kinds.iter().any(|k| starts(k, b))
}

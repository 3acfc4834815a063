//! The shortest text that completes each kind of open frame.

use super::cursor::{Arr, Esc, Frame, Obj};
use super::schema::{Kind, ObjectSchema, PAD};

/// Appends the shortest text that completes `frame` (below the top, a frame's state already
/// counts its open child as done).
pub(super) fn complete(frame: &Frame, out: &mut String) {
    match frame {
        Frame::Value(node) => out.push_str(&node.shortest),
        Frame::Free => {}
        Frame::Object {
            node,
            kind,
            seen,
            state,
            key,
            ..
        } => {
            let Kind::Object(o) = &node.kinds[*kind] else {
                return;
            };
            let mut seen = seen.clone();
            let member = |i: usize| format!("{}:{}", o.props[i].0, o.props[i].1.shortest);
            let mut wrote_any = !matches!(state, Obj::Open);
            match *state {
                Obj::Key => {
                    let pick = pick_key(o, &seen, |name| name.as_bytes().starts_with(key));
                    if let Some(i) = pick {
                        out.push_str(o.props[i].0.get(key.len()..).unwrap_or_default());
                        out.push(':');
                        out.push_str(&o.props[i].1.shortest);
                        seen[i] = true;
                    }
                }
                Obj::AfterKey(i) => {
                    out.push(':');
                    out.push_str(&o.props[i].1.shortest);
                    seen[i] = true;
                }
                Obj::AfterComma => {
                    if let Some(i) = pick_key(o, &seen, |_| true) {
                        out.push_str(&member(i));
                        seen[i] = true;
                    }
                }
                Obj::Open | Obj::AfterValue => {}
            }
            let missing = (0..o.props.len()).filter(|i| o.required[*i] && !seen[*i]);
            for i in missing {
                if wrote_any {
                    out.push(',');
                }
                out.push_str(&member(i));
                wrote_any = true;
            }
            out.push('}');
        }
        Frame::Array {
            node,
            kind,
            count,
            state,
            closing,
            ..
        } => {
            let Kind::Array(a) = &node.kinds[*kind] else {
                return;
            };
            let mut n = *count;
            if *state == Arr::AfterComma {
                out.push_str(&a.items.shortest);
                n += 1;
            }
            if !*closing {
                while n < a.min {
                    if n > 0 {
                        out.push(',');
                    }
                    out.push_str(&a.items.shortest);
                    n += 1;
                }
            }
            out.push(']');
        }
        Frame::Str {
            min, chars, esc, ..
        } => {
            match esc {
                Esc::Backslash => out.push('n'),
                Esc::Unicode(n) => out.push_str(&"0".repeat(4 - usize::from(*n))),
                Esc::None => {}
            }
            let have = chars + usize::from(*esc != Esc::None);
            out.extend(std::iter::repeat_n(PAD, min.saturating_sub(have)));
            out.push('"');
        }
        Frame::Number { state, .. } => {
            if !state.complete() {
                out.push('0');
            }
        }
        Frame::Literal { cands, pos } => {
            if let Some(c) = cands.iter().min_by_key(|c| c.len()) {
                out.push_str(&c[*pos..]);
            }
        }
    }
}

/// The unseen property to write: a required one if any matches, else the shortest.
fn pick_key(o: &ObjectSchema, seen: &[bool], fits: impl Fn(&str) -> bool) -> Option<usize> {
    let candidates = (0..o.props.len()).filter(|i| !seen[*i] && fits(&o.props[*i].0));
    candidates.min_by_key(|i| {
        (
            !o.required[*i],
            o.props[*i].0.len() + o.props[*i].1.shortest.len(),
        )
    })
}

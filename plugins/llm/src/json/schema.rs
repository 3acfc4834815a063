//! The part of JSON Schema the structured decoder enforces byte by byte, compiled from a
//! step's `json_schema`.
//!
//! Enforced: `type` (one kind, or several whose JSON texts start differently, such as
//! `[string, "null"]`), `properties` + `required` (only declared properties are written, each
//! once), `items`, `minItems`, `maxItems`, `minLength`, `maxLength`, `enum`, `const`, and
//! `anyOf`/`oneOf` of kinds that start differently. Annotations (`title`, `description`,
//! `examples`, `default`, `$schema`, `$id`, `$comment`, `format`) are ignored. Anything else
//! (`pattern`, `$ref`, numeric bounds, ...) makes [`compile`] refuse the schema, and the
//! step falls back to llama.cpp's grammar sampler.

use std::sync::Arc;

use serde_json::{Map, Value};

/// One value's schema: one or more kinds, told apart by their first byte.
#[derive(Debug)]
pub struct Node {
    pub kinds: Vec<Kind>,
    /// The shortest JSON text this node accepts.
    pub shortest: String,
}

#[derive(Debug)]
pub enum Kind {
    Object(ObjectSchema),
    Array(ArraySchema),
    String {
        min: usize,
        max: Option<usize>,
    },
    Number {
        integer: bool,
    },
    /// Fixed JSON texts: `true`, `false`, `null`, an `enum` or a `const`.
    Literals(Vec<String>),
}

#[derive(Debug)]
pub struct ObjectSchema {
    /// Declared properties in order, with their names as JSON string texts (quoted).
    pub props: Vec<(String, Arc<Node>)>,
    pub required: Vec<bool>,
}

#[derive(Debug)]
pub struct ArraySchema {
    pub items: Arc<Node>,
    pub min: usize,
    pub max: Option<usize>,
}

/// Why a schema is outside what the decoder enforces.
#[derive(Debug, thiserror::Error)]
#[error("{pointer}: {reason}")]
pub struct Unsupported {
    pub pointer: String,
    pub reason: String,
}

const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "examples",
    "default",
    "$schema",
    "$id",
    "$comment",
    "format",
    "readOnly",
    "writeOnly",
    "deprecated",
];

/// The padding a string gets when the budget closes it below its `minLength`.
pub const PAD: char = '…';

pub fn compile(schema: &Map<String, Value>) -> Result<Arc<Node>, Unsupported> {
    node(schema, "")
}

fn unsupported(pointer: &str, reason: impl Into<String>) -> Unsupported {
    Unsupported {
        pointer: if pointer.is_empty() {
            "/".into()
        } else {
            pointer.into()
        },
        reason: reason.into(),
    }
}

fn usize_of(
    s: &Map<String, Value>,
    key: &str,
    pointer: &str,
) -> Result<Option<usize>, Unsupported> {
    match s.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| unsupported(pointer, format!("`{key}` must be a whole number"))),
    }
}

fn node(s: &Map<String, Value>, pointer: &str) -> Result<Arc<Node>, Unsupported> {
    const KNOWN: &[&str] = &[
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "enum",
        "const",
        "anyOf",
        "oneOf",
    ];
    if let Some(k) = s
        .keys()
        .find(|k| !KNOWN.contains(&k.as_str()) && !ANNOTATIONS.contains(&k.as_str()))
    {
        return Err(unsupported(
            pointer,
            format!("`{k}` is not enforced while decoding"),
        ));
    }
    let mut kinds = Vec::new();
    if let Some(c) = s.get("const") {
        kinds.push(Kind::Literals(vec![c.to_string()]));
    } else if let Some(e) = s.get("enum") {
        let values = e
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| unsupported(pointer, "`enum` must be a non-empty list"))?;
        kinds.push(Kind::Literals(
            values.iter().map(Value::to_string).collect(),
        ));
    } else if let Some(alts) = s.get("anyOf").or_else(|| s.get("oneOf")) {
        let alts = alts
            .as_array()
            .ok_or_else(|| unsupported(pointer, "`anyOf`/`oneOf` must be a list"))?;
        for (i, alt) in alts.iter().enumerate() {
            let alt = alt
                .as_object()
                .ok_or_else(|| unsupported(pointer, "each alternative must be a schema"))?;
            let inner = node(alt, &format!("{pointer}/anyOf/{i}"))?;
            let inner = Arc::try_unwrap(inner).map_err(|_| unsupported(pointer, "shared node"))?;
            kinds.extend(inner.kinds);
        }
    } else {
        let types: Vec<&str> = match s.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => return Err(unsupported(pointer, "give the value a `type`")),
        };
        for t in types {
            kinds.push(match t {
                "object" => Kind::Object(object(s, pointer)?),
                "array" => {
                    let items = s
                        .get("items")
                        .and_then(Value::as_object)
                        .ok_or_else(|| unsupported(pointer, "an array needs an `items` schema"))?;
                    Kind::Array(ArraySchema {
                        items: node(items, &format!("{pointer}/items"))?,
                        min: usize_of(s, "minItems", pointer)?.unwrap_or(0),
                        max: usize_of(s, "maxItems", pointer)?,
                    })
                }
                "string" => Kind::String {
                    min: usize_of(s, "minLength", pointer)?.unwrap_or(0),
                    max: usize_of(s, "maxLength", pointer)?,
                },
                "number" => Kind::Number { integer: false },
                "integer" => Kind::Number { integer: true },
                "boolean" => Kind::Literals(vec!["true".into(), "false".into()]),
                "null" => Kind::Literals(vec!["null".into()]),
                other => return Err(unsupported(pointer, format!("unknown type `{other}`"))),
            });
        }
    }
    if kinds.is_empty() {
        return Err(unsupported(pointer, "no kind of value is allowed"));
    }
    // The first byte of the text picks the kind: they must not overlap.
    let mut seen = [false; 256];
    for k in &kinds {
        for b in first_bytes(k) {
            if std::mem::replace(&mut seen[b as usize], true) {
                return Err(unsupported(
                    pointer,
                    "alternatives that start alike (two kinds of string, of object, ...)",
                ));
            }
        }
    }
    let shortest = kinds
        .iter()
        .map(shortest_kind)
        .min_by_key(String::len)
        .unwrap_or_default();
    Ok(Arc::new(Node { kinds, shortest }))
}

fn object(s: &Map<String, Value>, pointer: &str) -> Result<ObjectSchema, Unsupported> {
    let empty = Map::new();
    let props = match s.get("properties") {
        Some(Value::Object(p)) => p,
        None => &empty,
        Some(_) => return Err(unsupported(pointer, "`properties` must be an object")),
    };
    if props.is_empty() {
        return Err(unsupported(
            pointer,
            "an object without `properties` (free-form objects are not enforced)",
        ));
    }
    let required: Vec<&str> = match s.get("required") {
        Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).collect(),
        None => Vec::new(),
        Some(_) => return Err(unsupported(pointer, "`required` must be a list")),
    };
    if let Some(missing) = required.iter().find(|r| !props.contains_key(**r)) {
        return Err(unsupported(
            pointer,
            format!("`{missing}` is required but not in `properties`"),
        ));
    }
    let mut out = ObjectSchema {
        props: Vec::new(),
        required: Vec::new(),
    };
    for (name, p) in props {
        let p = p
            .as_object()
            .ok_or_else(|| unsupported(pointer, format!("property `{name}` needs a schema")))?;
        out.props.push((
            Value::String(name.clone()).to_string(),
            node(p, &format!("{pointer}/properties/{name}"))?,
        ));
        out.required.push(required.contains(&name.as_str()));
    }
    Ok(out)
}

fn first_bytes(k: &Kind) -> Vec<u8> {
    match k {
        Kind::Object(_) => vec![b'{'],
        Kind::Array(_) => vec![b'['],
        Kind::String { .. } => vec![b'"'],
        Kind::Number { .. } => b"-0123456789".to_vec(),
        Kind::Literals(l) => {
            let mut v: Vec<u8> = l.iter().filter_map(|t| t.bytes().next()).collect();
            v.sort_unstable();
            v.dedup();
            v
        }
    }
}

fn shortest_kind(k: &Kind) -> String {
    match k {
        Kind::Object(o) => {
            let members: Vec<String> = o
                .props
                .iter()
                .zip(&o.required)
                .filter(|(_, r)| **r)
                .map(|((name, n), _)| format!("{name}:{}", n.shortest))
                .collect();
            format!("{{{}}}", members.join(","))
        }
        Kind::Array(a) => format!("[{}]", vec![a.items.shortest.as_str(); a.min].join(",")),
        Kind::String { min, .. } => format!("\"{}\"", PAD.to_string().repeat(*min)),
        Kind::Number { .. } => "0".into(),
        Kind::Literals(l) => l
            .iter()
            .min_by_key(|t| t.len())
            .cloned()
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn of(v: Value) -> Result<Arc<Node>, Unsupported> {
        compile(v.as_object().unwrap())
    }

    #[test]
    fn the_shortest_document_fills_required_members_and_minimums() {
        let n = of(json!({
            "type": "object", "required": ["people", "n"],
            "properties": {
                "people": { "type": "array", "minItems": 2, "items": { "type": "string", "minLength": 1 } },
                "n": { "type": "integer" },
                "note": { "type": "string" },
                "ok": { "type": ["boolean", "null"] }
            }
        }))
        .unwrap();
        assert_eq!(n.shortest, r#"{"people":["…","…"],"n":0}"#);
        let v: Value = serde_json::from_str(&n.shortest).unwrap();
        assert_eq!(v["n"], 0);
    }

    #[test]
    fn schemas_outside_the_subset_are_refused_with_their_pointer() {
        let e = of(json!({ "type": "object", "properties": { "a": { "type": "string", "pattern": "x+" } } }))
            .unwrap_err();
        assert_eq!(e.pointer, "/properties/a");
        assert!(e.reason.contains("pattern"), "{e}");
        let e =
            of(json!({ "anyOf": [{ "type": "string" }, { "type": "string", "maxLength": 3 }] }))
                .unwrap_err();
        assert!(e.reason.contains("start alike"), "{e}");
        assert!(of(json!({ "type": "object" })).is_err());
    }
}

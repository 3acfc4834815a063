//! Content-addressed step identity.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// JSON with object keys sorted, so equal values hash equally whatever their key order.
pub fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                canonical_json(&map[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `sha256(plugin identity, plugin version, resolved config)`; the identity is the name,
/// and for a WebAssembly component the sha256 of its code too. File inputs are artifact
/// references, which carry the sha256 of their bytes, so a file's content is part of the key.
pub fn cache_key(plugin: &str, version: &str, config: &Value) -> String {
    let mut text = String::new();
    canonical_json(config, &mut text);
    let mut h = Sha256::new();
    h.update(plugin.as_bytes());
    h.update([0]);
    h.update(version.as_bytes());
    h.update([0]);
    h.update(text.as_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_change_the_key() {
        let a = cache_key("p", "1", &json!({"x": 1, "y": [1, {"b": 2, "a": 1}]}));
        let b = cache_key("p", "1", &json!({"y": [1, {"a": 1, "b": 2}], "x": 1}));
        assert_eq!(a, b);
        assert_ne!(
            a,
            cache_key("p", "2", &json!({"x": 1, "y": [1, {"a": 1, "b": 2}]}))
        );
    }
}

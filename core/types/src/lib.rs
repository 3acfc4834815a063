//! What both sides of a mediaflow plugin agree on, written once: the host's plugin API
//! (`mediaflow-plugin-api`) and the WebAssembly guest SDK (`mediaflow-sdk`) re-export it.
//!
//! - [`ValueType`] and [`Port`]: the typed inputs and outputs the workflow compiler checks;
//! - [`ArtifactRef`]: a file passed between steps by reference (the SDK calls it `File`);
//! - [`schema_of`], [`input_ports`], [`output_ports`]: a plugin's config schema and ports,
//!   derived from the struct it parses its `with:` map into and the struct it returns;
//! - [`has_expression`]: whether a config value still holds a `${{ }}` expression.
//!
//! It depends on `serde`, `serde_json` and `schemars` only, and builds for the host and for
//! `wasm32-wasip2` alike.

mod file;
mod ports;

pub use file::{ArtifactRef, FILE_KEYWORD};
pub use ports::{input_ports, output_ports, schema_of, Port, ValueType};

use serde_json::Value;

/// Whether `value` (or anything inside it) is or holds a `${{ }}` expression, which the
/// engine resolves only at run time.
pub fn has_expression(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains("${{"),
        Value::Array(items) => items.iter().any(has_expression),
        Value::Object(map) => map.values().any(has_expression),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_expressions_at_any_depth() {
        assert!(has_expression(
            &json!({"a": [1, {"b": "x ${{ inputs.y }}"}]})
        ));
        assert!(!has_expression(&json!({"a": [1, {"b": "$ {{ not }}"}]})));
    }
}

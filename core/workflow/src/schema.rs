//! The JSON Schema of the workflow format, for editors (`mediaflow schema`).

use serde_json::{json, Value};

use crate::Registry;

fn duration() -> Value {
    json!({
        "description": "seconds, or a duration such as 500ms, 30s, 2m, 1h 30m",
        "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]
    })
}

/// The schema; each known plugin's config schema is attached to `with:` through `if/then`.
pub fn workflow_schema(registry: &Registry) -> Value {
    let types = [
        "string", "number", "integer", "boolean", "list", "object", "file", "any",
    ];
    let plugin_rules: Vec<Value> = registry
        .descriptors()
        .map(|d| {
            json!({
                "if": {"properties": {"uses": {"const": d.name}}, "required": ["uses"]},
                "then": {"properties": {"with": d.config_schema}}
            })
        })
        .collect();
    let plugin_names: Vec<&str> = registry.names().collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "mediaflow workflow",
        "type": "object",
        "additionalProperties": false,
        "required": ["steps"],
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "timeout": duration(),
            "max_parallel": {"type": "integer", "minimum": 1},
            "inputs": {
                "type": "object",
                "additionalProperties": {
                    "anyOf": [
                        {"enum": types},
                        {
                            "type": "object",
                            "additionalProperties": false,
                            "properties": {
                                "type": {"enum": types},
                                "default": {},
                                "required": {"type": "boolean"},
                                "description": {"type": "string"}
                            }
                        }
                    ]
                }
            },
            "steps": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_-]*$"},
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["uses"],
                    "allOf": plugin_rules,
                    "properties": {
                        "uses": {"anyOf": [{"enum": plugin_names}, {"type": "string"}]},
                        "with": {"type": "object"},
                        "needs": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                        "when": {"type": "string"},
                        "for_each": {},
                        "concurrency": {"type": "integer", "minimum": 1},
                        "retry": {
                            "anyOf": [
                                {"type": "integer", "minimum": 1},
                                {
                                    "type": "object",
                                    "additionalProperties": false,
                                    "properties": {
                                        "max_attempts": {"type": "integer", "minimum": 1},
                                        "backoff": duration(),
                                        "max_backoff": duration(),
                                        "jitter": {"type": "boolean"}
                                    }
                                }
                            ]
                        },
                        "timeout": duration(),
                        "cache": {"type": "boolean"},
                        "permissions": {
                            "type": "array",
                            "items": {"enum": crate::PERMISSIONS},
                            "description": "capabilities granted to a sandboxed (WebAssembly) plugin"
                        },
                        "description": {"type": "string"}
                    }
                }
            },
            "outputs": {"type": "object"}
        }
    })
}

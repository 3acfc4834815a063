//! The JSON Schema of the workflow format, for editors (`mediaflow schema`).

use mediaflow_plugin_api::{Permission, Registry, ValueType};
use serde_json::{json, Map, Value};

fn duration() -> Value {
    json!({
        "description": "seconds, or a duration such as 500ms, 30s, 2m, 1h 30m",
        "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]
    })
}

/// A string holding a `${{ }}` expression: it stands for a value of any type until the
/// run resolves it, exactly as the compiler treats it.
fn expression() -> Value {
    json!({"type": "string", "pattern": "\\$\\{\\{", "description": "a `${{ }}` expression"})
}

/// `schema`, with an expression accepted wherever a value may stand: every property, list
/// item and map value, at any depth (the way the GitHub Actions schema admits `${{ }}`).
/// The root (the `with:` map itself) stays an object.
pub fn accept_expressions(schema: &Value) -> Value {
    let Value::Object(obj) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (key, value) in obj {
        let inner = match (key.as_str(), value) {
            ("properties" | "patternProperties", Value::Object(props)) => Value::Object(
                props
                    .iter()
                    .map(|(k, v)| (k.clone(), value_or_expression(v)))
                    .collect(),
            ),
            ("items" | "additionalProperties" | "contains", Value::Object(_)) => {
                value_or_expression(value)
            }
            ("prefixItems", Value::Array(items)) => {
                Value::Array(items.iter().map(value_or_expression).collect())
            }
            ("anyOf" | "oneOf" | "allOf", Value::Array(branches)) => {
                Value::Array(branches.iter().map(accept_expressions).collect())
            }
            _ => value.clone(),
        };
        out.insert(key.clone(), inner);
    }
    Value::Object(out)
}

fn value_or_expression(schema: &Value) -> Value {
    if schema.as_bool() == Some(true) || schema.as_object().is_some_and(Map::is_empty) {
        return schema.clone();
    }
    let mut wrapper = Map::new();
    // Editors show these on hover and completion; keep them at the top.
    for key in ["description", "default"] {
        if let Some(v) = schema.get(key) {
            wrapper.insert(key.to_owned(), v.clone());
        }
    }
    wrapper.insert(
        "anyOf".to_owned(),
        json!([accept_expressions(schema), expression()]),
    );
    Value::Object(wrapper)
}

/// The schema; each known plugin's config schema (with expressions accepted wherever a
/// value may stand) is attached to `with:` through `if/then`.
pub fn workflow_schema(registry: &Registry) -> Value {
    let types: Vec<&str> = ValueType::names().collect();
    let plugin_rules: Vec<Value> = registry
        .descriptors()
        .map(|d| {
            json!({
                "if": {"properties": {"uses": {"const": d.name}}, "required": ["uses"]},
                "then": {"properties": {"with": accept_expressions(&d.config_schema)}}
            })
        })
        .collect();
    let plugin_names: Vec<&str> = registry.names().collect();
    let schedule_key = json!({
        "description": "When `mediaflow serve` starts this workflow by itself",
        "anyOf": [schedule(), {"type": "array", "items": schedule()}]
    });
    let mut schema = json!({
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
                        "when": {"anyOf": [{"type": "string"}, {"type": "boolean"}]},
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
                            "items": {"enum": Permission::names().collect::<Vec<_>>()},
                            "description": "capabilities granted to a sandboxed (WebAssembly) plugin"
                        },
                        "runs_on": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "in a distributed run, the tags a worker must have (`mediaflow worker --tags`) to run this step"
                        },
                        "description": {"type": "string"}
                    }
                }
            },
            "outputs": {"type": "object"}
        }
    });
    schema["properties"]["schedule"] = schedule_key;
    schema
}

/// One `schedule:` entry.
fn schedule() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["cron"],
        "properties": {
            "cron": {"type": "string", "description": "minute hour day-of-month month day-of-week, e.g. \"0 6 * * 1-5\""},
            "timezone": {"type": "string", "description": "an IANA time zone, e.g. Europe/London (default UTC)"},
            "inputs": {"type": "object"},
            "catch_up": {"enum": ["latest", "all", "none"]},
            "concurrency": {"enum": ["allow", "skip", "queue"]}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_are_accepted_wherever_a_value_may_stand() {
        let s = json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "audio": {"type": "object", "required": ["sha256"]},
                "language": {"enum": ["auto", "en"], "default": "auto", "description": "lang"},
                "stop": {"type": "array", "items": {"type": "string", "minLength": 1}},
                "any": {}
            }
        });
        let out = accept_expressions(&s);
        assert_eq!(out["additionalProperties"], false);
        let lang = &out["properties"]["language"];
        assert_eq!(lang["default"], "auto");
        assert_eq!(lang["anyOf"][0]["enum"], json!(["auto", "en"]));
        assert_eq!(lang["anyOf"][1]["type"], "string");
        let stop = &out["properties"]["stop"]["anyOf"][0];
        assert_eq!(stop["items"]["anyOf"][1]["pattern"], "\\$\\{\\{");
        assert_eq!(out["properties"]["any"], json!({}));
    }
}

//! `${{ … }}` expressions, evaluated with minijinja.
//!
//! A string that is exactly one `${{ expr }}` evaluates to the expression's typed value (a
//! list stays a list); any other string with expressions renders to a string.

use std::collections::BTreeSet;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

/// A piece of a templated string.
#[derive(Clone, Debug, PartialEq)]
pub enum Segment {
    Text(String),
    /// Expression source and its byte offset inside the string.
    Expr(String, usize),
}

/// Splits a string into literal text and expressions. `None` when it has no `${{`.
pub fn segments(s: &str) -> Result<Option<Vec<Segment>>, String> {
    if !s.contains("${{") {
        return Ok(None);
    }
    let mut out = Vec::new();
    let mut rest = s;
    let mut base = 0;
    while let Some(open) = rest.find("${{") {
        if open > 0 {
            out.push(Segment::Text(rest[..open].to_owned()));
        }
        let after = &rest[open + 3..];
        let Some(close) = after.find("}}") else {
            return Err("`${{` is never closed with `}}`".to_owned());
        };
        let code = after[..close].trim();
        if code.is_empty() {
            return Err("empty expression `${{ }}`".to_owned());
        }
        out.push(Segment::Expr(code.to_owned(), base + open + 3));
        let consumed = open + 3 + close + 2;
        base += consumed;
        rest = &rest[consumed..];
    }
    if !rest.is_empty() {
        out.push(Segment::Text(rest.to_owned()));
    }
    Ok(Some(out))
}

/// The expression of a string that is exactly one `${{ expr }}`.
pub fn single_expression(s: &str) -> Option<String> {
    match segments(s) {
        Ok(Some(segs)) if segs.len() == 1 => match &segs[0] {
            Segment::Expr(code, _) => Some(code.clone()),
            Segment::Text(_) => None,
        },
        _ => None,
    }
}

/// The code of a condition-like field: `${{ expr }}` or a bare expression.
pub fn condition_code(s: &str) -> String {
    single_expression(s).unwrap_or_else(|| s.trim().to_owned())
}

/// Why an expression could not be evaluated.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    pub expression: String,
    pub message: String,
}

/// Evaluates expressions against a JSON context (`inputs`, `steps`, `item`, `run` …).
pub struct Evaluator {
    env: Environment<'static>,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Evaluator")
    }
}

impl Default for Evaluator {
    fn default() -> Self {
        Self::new()
    }
}

fn describe(e: &minijinja::Error) -> String {
    let mut msg = e.to_string();
    if let Some(detail) = e.detail() {
        if !msg.contains(detail) {
            msg = format!("{msg}: {detail}");
        }
    }
    msg
}

impl Evaluator {
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_filter(
            "tojson",
            |v: minijinja::Value| -> Result<String, minijinja::Error> {
                serde_json::to_string(&v).map_err(|e| {
                    minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
                })
            },
        );
        Evaluator { env }
    }

    /// Checks an expression's syntax and returns the dotted variable paths it reads.
    pub fn references(&self, code: &str) -> Result<BTreeSet<String>, String> {
        let expr = self
            .env
            .compile_expression(code)
            .map_err(|e| describe(&e))?;
        Ok(expr.undeclared_variables(true).into_iter().collect())
    }

    pub fn eval(&self, code: &str, ctx: &Value) -> Result<Value, EvalError> {
        let err = |message: String| EvalError {
            expression: code.to_owned(),
            message,
        };
        let expr = self
            .env
            .compile_expression(code)
            .map_err(|e| err(describe(&e)))?;
        let v = expr.eval(ctx).map_err(|e| err(describe(&e)))?;
        if v.is_undefined() {
            return Err(err("the expression is undefined".to_owned()));
        }
        serde_json::to_value(&v).map_err(|e| err(e.to_string()))
    }

    pub fn eval_bool(&self, code: &str, ctx: &Value) -> Result<bool, EvalError> {
        let v = self.eval(code, ctx)?;
        Ok(match v {
            Value::Null => false,
            Value::Bool(b) => b,
            Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
        })
    }

    /// Resolves every expression inside a JSON value.
    pub fn resolve(&self, value: &Value, ctx: &Value) -> Result<Value, EvalError> {
        Ok(match value {
            Value::String(s) => self.resolve_str(s, ctx)?,
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.resolve(v, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.resolve(v, ctx)?)))
                    .collect::<Result<_, EvalError>>()?,
            ),
            other => other.clone(),
        })
    }

    fn resolve_str(&self, s: &str, ctx: &Value) -> Result<Value, EvalError> {
        let segs = match segments(s) {
            Ok(Some(segs)) => segs,
            Ok(None) => return Ok(Value::String(s.to_owned())),
            Err(message) => {
                return Err(EvalError {
                    expression: s.to_owned(),
                    message,
                })
            }
        };
        if let [Segment::Expr(code, _)] = segs.as_slice() {
            return self.eval(code, ctx);
        }
        let mut out = String::new();
        for seg in segs {
            match seg {
                Segment::Text(t) => out.push_str(&t),
                Segment::Expr(code, _) => match self.eval(&code, ctx)? {
                    Value::String(s) => out.push_str(&s),
                    Value::Null => {}
                    other => out.push_str(&other.to_string()),
                },
            }
        }
        Ok(Value::String(out))
    }
}

/// Whether an expression is a plain dotted path such as `steps.a.outputs.text`.
pub fn is_plain_path(code: &str) -> bool {
    !code.is_empty()
        && code.split('.').all(|part| {
            let mut chars = part.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn single_expressions_keep_their_type() {
        let ev = Evaluator::new();
        let ctx = json!({"inputs": {"xs": [1, 2], "desk": "world"}});
        assert_eq!(
            ev.resolve(&json!("${{ inputs.xs }}"), &ctx).unwrap(),
            json!([1, 2])
        );
        assert_eq!(
            ev.resolve(
                &json!("n=${{ inputs.xs | length }} ${{ inputs.desk }}"),
                &ctx
            )
            .unwrap(),
            json!("n=2 world")
        );
        assert!(ev.eval("inputs.nope", &ctx).is_err());
    }

    #[test]
    fn references_are_dotted_paths() {
        let ev = Evaluator::new();
        let refs = ev
            .references("steps.a.outputs | map(attribute='text') | join(inputs.sep)")
            .unwrap();
        assert!(refs.contains("steps.a.outputs"));
        assert!(refs.contains("inputs.sep"));
        assert!(ev.references("1 +").is_err());
    }
}

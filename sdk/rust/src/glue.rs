//! Between the WIT exports and [`Plugin`]: JSON text in, typed config, JSON text out.
//!
//! The host splits a step's `with:` map into `config` (settings) and `inputs` (the input
//! ports) for the WIT `run`; the glue merges them back, so a plugin sees one `Config`.

use mediaflow_types::has_expression;
use serde::Deserialize;

use crate::bindings::mediaflow::plugin::types as wit;
use crate::{Error, Issue, Map, Plugin, Value};

/// The WIT `describe`.
pub fn describe<P: Plugin>() -> wit::Descriptor {
    P::describe().to_wit()
}

/// The WIT `validate`: `config` is the whole `with:` map as JSON.
pub fn validate<P: Plugin>(config: &str) -> Vec<wit::ConfigIssue> {
    let issues = match serde_json::from_str::<Value>(config) {
        Ok(config) => check::<P>(&config),
        Err(e) => vec![Issue::new("", format!("config is not JSON: {e}"))],
    };
    issues.into_iter().map(Issue::into_wit).collect()
}

/// The WIT `run`: `config` and `inputs` are the two halves of `with:` as JSON objects.
pub fn run<P: Plugin>(config: &str, inputs: &str) -> Result<String, wit::PluginError> {
    let merged = object("config", config).and_then(|mut with| {
        with.extend(object("inputs", inputs)?);
        Ok(with)
    });
    merged
        .and_then(|with| run_with::<P>(Value::Object(with)))
        .map(|out| out.to_string())
        .map_err(Error::into_wit)
}

/// Parses `with:` into `P::Config` and runs [`Plugin::check`]. A config that does not
/// parse is no issue while it holds a `${{ }}` expression (the compiler checks literal
/// configs; expressions stand where numbers or lists will be), and one issue at `""` with
/// the parser's message otherwise.
pub fn check<P: Plugin>(config: &Value) -> Vec<Issue> {
    match P::Config::deserialize(config) {
        Ok(parsed) => P::check(&parsed),
        Err(_) if has_expression(config) => Vec::new(),
        Err(e) => vec![Issue::new("", e.to_string())],
    }
}

/// Parses the whole `with:` map into `P::Config`, runs the plugin and returns its outputs
/// as a JSON object.
pub fn run_with<P: Plugin>(with: Value) -> Result<Value, Error> {
    let config = serde_json::from_value::<P::Config>(with)
        .map_err(|e| Error::new("bad_config", format!("invalid settings: {e}")))?;
    match serde_json::to_value(P::run(config)?) {
        Ok(out @ Value::Object(_)) => Ok(out),
        Ok(_) => Err(Error::new(
            "bad_output",
            "the plugin's outputs must be a JSON object",
        )),
        Err(e) => Err(Error::new(
            "bad_output",
            format!("cannot serialize the outputs: {e}"),
        )),
    }
}

fn object(what: &str, text: &str) -> Result<Map<String, Value>, Error> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Error::bad_input(format!("{what} is not a JSON object"))),
        Err(e) => Err(Error::bad_input(format!("{what} is not JSON: {e}"))),
    }
}

//! Built-in plugins that real workflows need: `text.template`, `json.pick`, `json.merge`,
//! `file.read`, `file.write` and `core.delay`.

use std::sync::Arc;

use mediaflow_plugin_api::{Plugin, PluginError, Value};

mod delay;
mod file;
mod json;
mod text;

pub use delay::Delay;
pub use file::{FileRead, FileWrite};
pub use json::{JsonMerge, JsonPick};
pub use text::TextTemplate;

/// Every built-in plugin.
pub fn plugins() -> Vec<Arc<dyn Plugin>> {
    vec![
        Arc::new(TextTemplate::new()),
        Arc::new(JsonPick::new()),
        Arc::new(JsonMerge::new()),
        Arc::new(FileRead::new()),
        Arc::new(FileWrite::new()),
        Arc::new(Delay::new()),
    ]
}

/// A string setting the engine already validated against the schema.
pub(crate) fn str_field<'a>(config: &'a Value, key: &str) -> Result<&'a str, PluginError> {
    config
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| PluginError::fatal("bad_config", format!("`{key}` must be a string")))
}

/// Parses `2s`, `500ms`, `1m 30s` or a number of seconds.
pub fn parse_duration(v: &Value) -> Option<std::time::Duration> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .filter(|f| *f >= 0.0 && f.is_finite())
            .map(std::time::Duration::from_secs_f64),
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(f) if f >= 0.0 && f.is_finite() => Some(std::time::Duration::from_secs_f64(f)),
            _ => humantime::parse_duration(s.trim()).ok(),
        },
        _ => None,
    }
}

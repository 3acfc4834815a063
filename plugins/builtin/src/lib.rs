//! Built-in plugins that real workflows need: `text.template`, `json.pick`, `json.merge`,
//! `file.read`, `file.write` and `core.delay`. Each is a [`TypedPlugin`]: its settings are
//! one struct, whose schema (with defaults and descriptions) is the plugin's config schema.
//!
//! [`TypedPlugin`]: mediaflow_plugin_api::TypedPlugin

use std::sync::Arc;

use mediaflow_plugin_api::{typed, Plugin, Registry};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

mod confine;
mod delay;
mod file;
mod json;
mod text;

pub use confine::{confine, FILES_ROOT_ENV};
pub use delay::Delay;
pub use file::{FileRead, FileWrite};
pub use json::{JsonMerge, JsonPick};
pub use text::TextTemplate;

/// Every built-in plugin.
pub fn plugins() -> Vec<Arc<dyn Plugin>> {
    vec![
        typed(TextTemplate::new()),
        typed(JsonPick::new()),
        typed(JsonMerge::new()),
        typed(FileRead::new()),
        typed(FileWrite::new()),
        typed(Delay::new()),
    ]
}

/// A registry holding the built-in plugins (origin `built-in`).
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    // The built-ins have distinct names; there is nothing to collide with yet.
    let _ = registry.add(plugins(), "built-in");
    registry
}

fn yes() -> bool {
    true
}

/// For `Option<Value>` settings where an explicit `null` is a value, not an absence.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

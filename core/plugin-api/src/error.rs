use serde::{Deserialize, Serialize};

/// Why a step failed. Crosses process and wasm boundaries as JSON, so it is plain data:
/// a machine-readable `code`, a human `message` and an optional `help` saying what to do.
///
/// Errors are final by default: [`PluginError::new`] is not retried even when the step has
/// `retry:`. Mark the ones another attempt may fix (a flaky network, a crashed process, a
/// busy database) with [`PluginError::retryable`]. The WebAssembly SDK's `Error` has the
/// same default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct PluginError {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Whether another attempt may succeed.
    #[serde(default)]
    pub retryable: bool,
}

impl PluginError {
    /// An error another attempt cannot fix (bad input, bad config, a missing model).
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        PluginError {
            code: code.to_owned(),
            message: message.into(),
            help: None,
            retryable: false,
        }
    }

    /// Marks the error as transient: the engine retries it when the step has `retry:`.
    pub fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn cancelled() -> Self {
        PluginError::new("cancelled", "the step was cancelled")
    }

    /// The error for a plugin that panicked, from the panic's payload.
    pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        PluginError::new("panic", format!("the plugin panicked: {msg}"))
    }

    /// The error as stored and printed: `{"code", "message", "help"?}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"code": self.code, "message": self.message});
        if let Some(h) = &self.help {
            v["help"] = serde_json::json!(h);
        }
        v
    }
}

/// A problem found by [`crate::Plugin::validate`]. `pointer` is a JSON pointer into the
/// step's `with:` map (`/template`, `/stop/0`), which the compiler maps back to a YAML line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfigIssue {
    pub pointer: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl ConfigIssue {
    pub fn new(pointer: &str, message: impl Into<String>) -> Self {
        ConfigIssue {
            pointer: pointer.to_owned(),
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Escapes one key for use in a JSON pointer (`~` → `~0`, `/` → `~1`).
pub fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Undoes [`pointer_escape`].
pub fn pointer_unescape(part: &str) -> String {
    part.replace("~1", "/").replace("~0", "~")
}

use serde::{Deserialize, Serialize};

/// Why a step failed. Crosses process and wasm boundaries as JSON, so it is plain data:
/// a machine-readable `code`, a human `message` and an optional `help` saying what to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct PluginError {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Whether another attempt may succeed. Bad configuration is not retryable; a flaky
    /// network is.
    #[serde(default = "yes")]
    pub retryable: bool,
}

fn yes() -> bool {
    true
}

impl PluginError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        PluginError {
            code: code.to_owned(),
            message: message.into(),
            help: None,
            retryable: true,
        }
    }

    /// An error that another attempt cannot fix (bad input, bad config).
    pub fn fatal(code: &str, message: impl Into<String>) -> Self {
        PluginError {
            retryable: false,
            ..PluginError::new(code, message)
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn cancelled() -> Self {
        PluginError::fatal("cancelled", "the step was cancelled")
    }

    /// The error for a plugin that panicked, from the panic's payload.
    pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        PluginError::fatal("panic", format!("the plugin panicked: {msg}"))
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

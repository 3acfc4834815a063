//! Step failures and configuration issues.

use crate::bindings::mediaflow::plugin::types as wit;

/// A step failure. `code` is a short word (`bad_input`, `not_found`…); `help` tells the
/// workflow author what to do.
///
/// Errors are final by default, as native plugins' are: [`Error::new`] is **not** retried
/// even when the step has `retry:`. Mark the ones another attempt may fix (a busy service,
/// a model that timed out) with [`Error::retryable`].
#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    pub code: String,
    pub message: String,
    pub help: Option<String>,
    /// Whether another attempt may succeed; `false` unless [`Error::retryable`] said so.
    pub retryable: bool,
}

impl Error {
    /// An error another attempt cannot fix (not retryable).
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Error {
            code: code.to_owned(),
            message: message.into(),
            help: None,
            retryable: false,
        }
    }

    /// The step's input is unusable (code `bad_input`, not retryable).
    pub fn bad_input(message: impl Into<String>) -> Self {
        Error::new("bad_input", message)
    }

    /// What the workflow author can do about it.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Marks the error as transient: the engine retries it per the step's `retry:`.
    pub fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }

    pub(crate) fn from_wit(e: wit::PluginError) -> Self {
        Error {
            code: e.code,
            message: e.message,
            help: e.help,
            retryable: e.retryable,
        }
    }

    pub(crate) fn into_wit(self) -> wit::PluginError {
        wit::PluginError {
            code: self.code,
            message: self.message,
            help: self.help,
            retryable: self.retryable,
        }
    }
}

/// Calls a capability of the host. Outside a host (a plugin's native unit tests) there is
/// none to call: the answer is an `unavailable` error instead of a trap.
pub(crate) fn host_call<T>(
    capability: &str,
    call: impl FnOnce() -> Result<T, wit::PluginError>,
) -> Result<T, Error> {
    if cfg!(target_arch = "wasm32") {
        call().map_err(Error::from_wit)
    } else {
        Err(Error::new(
            "unavailable",
            format!("`{capability}` is a capability of the mediaflow host; outside it (in a native test) it is unavailable"),
        ))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

/// A configuration problem found by [`Plugin::check`](crate::Plugin::check), at a JSON
/// pointer into `with:` (e.g. `/preserve/1`); the workflow compiler shows it at that line.
#[derive(Clone, Debug, PartialEq)]
pub struct Issue {
    pub pointer: String,
    pub message: String,
    pub help: Option<String>,
}

impl Issue {
    pub fn new(pointer: &str, message: impl Into<String>) -> Self {
        Issue {
            pointer: pointer.to_owned(),
            message: message.into(),
            help: None,
        }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub(crate) fn into_wit(self) -> wit::ConfigIssue {
        wit::ConfigIssue {
            pointer: self.pointer,
            message: self.message,
            help: self.help,
        }
    }
}

//! Why a step or a run did not succeed, as types. They become JSON only where they are
//! stored (and in reports read back from the store).

use std::time::Duration;

use mediaflow_plugin_api::{format_duration, PluginError};
use serde_json::{json, Value};

/// Why a step (or one `for_each` item) did not succeed.
#[derive(Clone, Debug, PartialEq)]
pub enum StepError {
    /// What the plugin reported, or what the engine reported on its behalf (invalid
    /// config, a timeout, a panic, a cancellation).
    Plugin(PluginError),
    /// A step this one needs failed or was cancelled, so this one never ran.
    Upstream { step: String },
    /// A step this one needs was skipped, so this one is skipped too.
    UpstreamSkipped { step: String },
    /// The step's `when:` was false.
    ConditionFalse { condition: String },
    /// Items of a `for_each` step failed; `first` is the index of the first one.
    Items {
        failed: usize,
        total: usize,
        first: usize,
        message: String,
    },
    /// The run ended (cancelled, timed out) before this step could finish.
    RunEnded { reason: String },
}

impl From<PluginError> for StepError {
    fn from(e: PluginError) -> Self {
        StepError::Plugin(e)
    }
}

impl StepError {
    pub fn code(&self) -> &str {
        match self {
            StepError::Plugin(e) => &e.code,
            StepError::Upstream { .. } => "upstream_failed",
            StepError::UpstreamSkipped { .. } => "upstream_skipped",
            StepError::ConditionFalse { .. } => "condition_false",
            StepError::Items { .. } => "items_failed",
            StepError::RunEnded { .. } => "cancelled",
        }
    }

    pub fn message(&self) -> String {
        match self {
            StepError::Plugin(e) => e.message.clone(),
            StepError::Upstream { step } => format!("not run: upstream step `{step}` failed"),
            StepError::UpstreamSkipped { step } => {
                format!("skipped because `{step}` was skipped")
            }
            StepError::ConditionFalse { condition } => format!("`when: {condition}` is false"),
            StepError::Items {
                failed,
                total,
                first,
                message,
            } => format!("{failed} of {total} items failed; item {first}: {message}"),
            StepError::RunEnded { reason } => reason.clone(),
        }
    }

    /// The stored form: `{"code", "message", "help"?}`.
    pub fn to_json(&self) -> Value {
        match self {
            StepError::Plugin(e) => e.to_json(),
            other => json!({"code": other.code(), "message": other.message()}),
        }
    }
}

/// Why a run did not succeed.
#[derive(Clone, Debug, PartialEq)]
pub enum RunError {
    /// These steps failed (their dependants were not run).
    StepsFailed(Vec<String>),
    /// The workflow's `timeout:` passed.
    Timeout(Duration),
    Cancelled,
    /// The workflow's `outputs:` could not be evaluated.
    Outputs(String),
}

impl RunError {
    pub fn to_json(&self) -> Value {
        match self {
            RunError::StepsFailed(steps) => {
                let list = steps
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                json!({"code": "step_failed", "message": format!("failed steps: {list}"), "steps": steps})
            }
            RunError::Timeout(d) => json!({
                "code": "run_timeout",
                "message": format!("the run timed out after {}", format_duration(*d)),
            }),
            RunError::Cancelled => json!({"code": "cancelled", "message": "the run was cancelled"}),
            RunError::Outputs(message) => json!({"code": "outputs", "message": message}),
        }
    }
}

//! Turns a failed call (trap, limit, deadline) into a step error that says why.

use std::time::Duration;

use mediaflow_plugin_api::{format_duration, PluginError};
use wasmtime::Trap;

use crate::runtime::WasmConfig;

/// Why the host stopped a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interrupted {
    Deadline,
    Cancelled,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Interrupted::Deadline => "deadline reached",
            Interrupted::Cancelled => "cancelled",
        })
    }
}

impl std::error::Error for Interrupted {}

/// The message of a Rust panic in the guest's stderr: `panicked at FILE:LINE:COL:\nMSG`.
fn panic_message(stderr: &str) -> Option<String> {
    let at = stderr.rfind("panicked at ")?;
    let rest = &stderr[at + "panicked at ".len()..];
    let (location, message) = rest.split_once('\n')?;
    let message: Vec<&str> = message
        .lines()
        .take_while(|l| !l.starts_with("note: "))
        .collect();
    Some(format!(
        "{} (at {})",
        message.join("\n").trim(),
        location.trim_end_matches(':')
    ))
}

pub(crate) fn classify(
    e: wasmtime::Error,
    stderr: &str,
    timeout: Duration,
    config: &WasmConfig,
) -> PluginError {
    if let Some(i) = e.downcast_ref::<Interrupted>() {
        return match i {
            Interrupted::Cancelled => PluginError::cancelled(),
            Interrupted::Deadline => PluginError::new(
                "timeout",
                format!(
                    "the plugin ran past its {} deadline and was stopped",
                    format_duration(timeout)
                ),
            ).retryable()
            .with_help("raise the step's `timeout:` or MEDIAFLOW_WASM_TIMEOUT_SECS if the work is legitimately long"),
        };
    }
    if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return PluginError::new(
            "plugin_exited",
            format!(
                "the plugin called `exit` with status {} instead of returning{}",
                exit.0,
                tail(stderr)
            ),
        )
        .with_help("a plugin reports failure by returning an error, not by exiting");
    }
    let text = format!("{e:#}");
    if text.contains("forcing trap when growing memory") {
        return PluginError::new(
            "memory_limit",
            format!(
                "the plugin tried to use more than its {} MiB memory limit and was stopped",
                config.max_memory >> 20
            ),
        )
        .with_help("raise MEDIAFLOW_WASM_MEMORY_MB if the plugin legitimately needs more");
    }
    if let Some(message) = panic_message(stderr) {
        return PluginError::new("plugin_panicked", format!("the plugin panicked: {message}"));
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => PluginError::new(
            "fuel_exhausted",
            format!(
                "the plugin used up its fuel ({} units) and was stopped",
                config.fuel.unwrap_or(0)
            ),
        )
        .with_help("raise MEDIAFLOW_WASM_FUEL if the work is legitimately long"),
        Some(trap) => PluginError::new(
            "plugin_trapped",
            format!("the plugin trapped: {trap}{}", tail(stderr)),
        ),
        None => PluginError::new("plugin_failed", format!("the plugin failed: {text}")),
    }
}

fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        String::new()
    } else {
        let from = lines.len().saturating_sub(5);
        format!("; stderr: {}", lines[from..].join(" | "))
    }
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn reads_rust_panic_messages() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:12:9:\nboom: bad input\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(
            panic_message(stderr).as_deref(),
            Some("boom: bad input (at src/lib.rs:12:9)")
        );
        assert_eq!(panic_message("nothing here"), None);
    }
}

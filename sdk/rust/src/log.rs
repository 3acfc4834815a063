//! Step logs and progress; always available. Outside a host (a plugin's native unit
//! tests) they go to stderr.

use crate::bindings::mediaflow::plugin::log as host;

fn log(level: host::Level, message: &str) {
    if cfg!(target_arch = "wasm32") {
        host::log(level, message);
    } else {
        eprintln!("{level:?}: {message}");
    }
}

pub fn debug(message: &str) {
    log(host::Level::Debug, message);
}

pub fn info(message: &str) {
    log(host::Level::Info, message);
}

pub fn warn(message: &str) {
    log(host::Level::Warn, message);
}

pub fn error(message: &str) {
    log(host::Level::Error, message);
}

/// `fraction` in 0.0..=1.0.
pub fn progress(fraction: f32, message: Option<&str>) {
    if cfg!(target_arch = "wasm32") {
        host::progress(fraction, message);
    } else {
        eprintln!(
            "progress {:.0}%: {}",
            fraction * 100.0,
            message.unwrap_or("")
        );
    }
}

//! Runs plugins that live in their own processes (`mediaflow-llm`, `mediaflow-asr`, or any
//! executable that speaks [`mediaflow_protocol`]).
//!
//! A [`Supervisor`] owns one plugin executable: it starts the process on first use (with a
//! scrubbed environment), does the two-way version handshake, multiplexes concurrent
//! calls over its stdin/stdout, relays progress and logs, passes artifacts as paths, asks
//! the process to check step settings (`validate`), and starts the process again after it
//! dies (backing off when it keeps dying). A crash fails only the calls that were in
//! flight, with a retryable error that quotes the end of the plugin's stderr. A call whose
//! future is dropped (a step timeout) is cancelled in the process.

mod discover;
mod host_calls;
mod io;
mod plugin;
mod supervisor;

pub use discover::{describe, discover, search_dirs, PluginBinary};
pub use plugin::ProcessPlugin;
pub use supervisor::Supervisor;

/// Why a plugin executable could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot start plugin {path}: {source}")]
    Spawn {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin {path} did not complete the handshake: {message}")]
    Handshake { path: String, message: String },
}

//! Runs WebAssembly component plugins (WIT package `mediaflow:plugin`, see `sdk/wit`).
//!
//! Each plugin is compiled once (and cached on disk by its sha256), linked once into an
//! `InstancePre`, and every call gets a fresh `Store` with:
//! - WASI p2 with no preopened directories, no environment, no network and a wall clock
//!   stuck at the Unix epoch unless the step grants `clock`;
//! - `StoreLimits` on memory, an epoch deadline on wall-clock time, optional fuel;
//! - the `mediaflow:plugin` imports, of which `llm`, `artifacts` and `kv` answer only when
//!   the step grants them (`permissions:`).
//!
//! [`WasmPlugin`] implements the same [`Plugin`](mediaflow_plugin_api::Plugin) trait as
//! native plugins, so the engine does not know the difference.

mod bindings;
pub mod build;
mod cache;
mod host;
mod loader;
mod plugin;
mod runtime;
mod trap;

pub use loader::{parse_reference, ConfinedWasmLoader, WasmLoader};
pub use plugin::WasmPlugin;
pub use runtime::{WasmConfig, WasmRuntime};

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a WebAssembly component: {reason}")]
    NotAComponent { path: String, reason: String },
    #[error("{path}: {message}")]
    Incompatible { path: String, message: String },
    #[error("{path}: `describe` failed: {message}")]
    Describe { path: String, message: String },
    #[error("{path}: sha256 is {actual}, but the workflow pins {expected}")]
    Checksum {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
}

//! The protocol between mediaflow and plugins that run in their own processes, and
//! [`serve`], which turns a set of [`Plugin`]s into a plugin binary.
//!
//! Transport: newline-delimited JSON on the plugin's stdin (host → plugin) and stdout
//! (plugin → host); stderr is the plugin's own log, kept by the host for crash reports.
//!
//! 1. The plugin starts and writes [`PluginMessage::Hello`] with [`PROTOCOL_VERSION`] and its
//!    descriptors. A host that speaks another version refuses it. `BINARY --describe`
//!    writes the same line and exits, so hosts can list plugins without starting them.
//! 2. The host sends [`HostMessage::Run`] requests, each with an id; several may be in
//!    flight. The plugin answers with any number of `Progress`/`Log` messages and one
//!    `Result` or `Error` carrying the same id. `Cancel { id }` asks it to stop.
//! 3. Artifacts travel as paths: `Run.context.artifacts` maps each input artifact's sha256 to
//!    its file; output artifacts are written to `context.scratch_dir/<sha256>` and returned
//!    as ordinary [`ArtifactRef`]s, which the host moves into its store.

mod serve;

use std::collections::BTreeMap;
use std::path::PathBuf;

use mediaflow_plugin_api::{Descriptor, LogLevel, PluginError, Value};
use serde::{Deserialize, Serialize};

pub use mediaflow_plugin_api::{ArtifactRef, Plugin};
pub use serve::{serve, serve_with_args};

/// Bumped on any incompatible change to the messages below.
pub const PROTOCOL_VERSION: u32 = 1;

/// Where a call runs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CallContext {
    pub run_id: String,
    pub step_id: String,
    #[serde(default)]
    pub item_index: Option<usize>,
    pub attempt: u32,
    /// sha256 → file, for every artifact in the config.
    #[serde(default)]
    pub artifacts: BTreeMap<String, PathBuf>,
    /// Where the plugin writes output artifacts, named by their sha256.
    pub scratch_dir: PathBuf,
}

/// Host → plugin.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // one message at a time; boxing buys nothing
pub enum HostMessage {
    Run {
        id: u64,
        plugin: String,
        config: Value,
        context: CallContext,
    },
    Cancel {
        id: u64,
    },
    /// Finish in-flight calls, then exit.
    Shutdown,
}

/// Plugin → host.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PluginMessage {
    Hello {
        protocol: u32,
        /// The binary's own name and version.
        name: String,
        version: String,
        plugins: Vec<Descriptor>,
    },
    Progress {
        id: u64,
        fraction: f32,
        #[serde(default)]
        message: Option<String>,
    },
    Log {
        id: u64,
        level: LogLevel,
        message: String,
    },
    Result {
        id: u64,
        outputs: Value,
    },
    Error {
        id: u64,
        error: PluginError,
    },
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("malformed message `{line}`: {source}")]
    Malformed {
        line: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the plugin speaks protocol {got}, this mediaflow speaks {PROTOCOL_VERSION}; rebuild the plugin against mediaflow-protocol {PROTOCOL_VERSION}")]
    Version { got: u32 },
}

/// One message as one line of JSON (with the newline).
pub fn encode<T: Serialize>(msg: &T) -> String {
    let mut s = serde_json::to_string(msg).unwrap_or_else(|e| {
        format!(r#"{{"type":"error","id":0,"error":{{"code":"encode","message":"{e}"}}}}"#)
    });
    s.push('\n');
    s
}

/// Parses one line.
pub fn decode<T: for<'de> Deserialize<'de>>(line: &str) -> Result<T, ProtocolError> {
    serde_json::from_str(line).map_err(|source| ProtocolError::Malformed {
        line: line.chars().take(200).collect(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_as_tagged_json_lines() {
        let line = encode(&HostMessage::Cancel { id: 7 });
        assert_eq!(line, "{\"type\":\"cancel\",\"id\":7}\n");
        let back: HostMessage = decode(line.trim()).unwrap();
        assert!(matches!(back, HostMessage::Cancel { id: 7 }));
        assert!(decode::<PluginMessage>("{\"type\":\"nope\"}").is_err());
    }
}

//! The protocol between mediaflow and plugins that run in their own processes, and
//! [`serve`], which turns a set of [`Plugin`]s into a plugin binary.
//!
//! Transport: newline-delimited JSON on the plugin's stdin (host → plugin) and stdout
//! (plugin → host); stderr is the plugin's own log, kept by the host for crash reports.
//!
//! 1. **Handshake.** The plugin starts and writes [`PluginMessage::Hello`] with the
//!    [`PROTOCOL_VERSION`] it speaks and its descriptors. The host refuses a plugin that
//!    speaks another version, naming both; otherwise it answers [`HostMessage::Hello`] with
//!    its own version, which the plugin checks in turn and answers with
//!    [`PluginMessage::Ready`] or [`PluginMessage::Refused`]. `BINARY --describe` writes
//!    the plugin's hello and exits, so hosts can list plugins without starting them.
//! 2. **Calls.** The host sends [`HostMessage::Run`] and [`HostMessage::Validate`]
//!    requests, each with an id; several may be in flight. A run is answered with any
//!    number of `Progress`/`Log` messages and one `Result` or `Error` carrying its id; a
//!    validate with one `Validated`. `Cancel { id }` asks a run to stop.
//! 3. **Artifacts** travel as paths: `Run.context.artifacts` maps each input artifact's
//!    sha256 to its file; output artifacts are written to `context.scratch_dir/<sha256>`
//!    and returned as ordinary [`ArtifactRef`]s, which the host moves into its store.
//! 4. **Host calls.** While it runs a call, the plugin may ask the host for what the
//!    host keeps: [`PluginMessage::HostCall`] with the run's id, a number of its own and a
//!    [`HostRequest`] (text generation through `llm.generate`, storing or searching
//!    embeddings); the host answers [`HostMessage::HostReply`] with that number. Calls
//!    still open when their run ends are answered with an error.
//! 5. **Ending.** `Shutdown` lets in-flight calls finish, then the plugin exits. When its
//!    stdin closes (the host died), the plugin cancels in-flight calls and exits.

mod host_calls;
mod lines;
mod serve;

use std::collections::BTreeMap;
use std::path::PathBuf;

use mediaflow_plugin_api::{
    ConfigIssue, Descriptor, EmbeddingModel, LogLevel, PluginError, SearchMode, Value, VectorRecord,
};
use serde::{Deserialize, Serialize};

pub use lines::{read_line, Line};
pub use mediaflow_plugin_api::{ArtifactRef, Plugin};
pub use serve::{serve, serve_with_args};

/// Bumped on any incompatible change to the messages below.
pub const PROTOCOL_VERSION: u32 = 3;

/// The error code of a call that found the plugin process unable to serve any more (its
/// worker thread is gone, its native library state is lost). `serve` answers the call,
/// then ends the process, so the host starts a fresh one for the next call.
pub const PLUGIN_BROKEN: &str = "plugin_broken";

/// The longest line either side reads; a longer one is an error, not an allocation.
pub const MAX_LINE: usize = 16 << 20;

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
    /// The host's half of the handshake, in answer to the plugin's hello.
    Hello {
        protocol: u32,
        /// The host program and its version, e.g. `mediaflow 0.1.0`.
        host: String,
    },
    Run {
        id: u64,
        plugin: String,
        config: Value,
        context: CallContext,
    },
    /// Checks beyond the schema for a step's `with:` map (expressions may still be
    /// unresolved `${{ }}` strings); answered by [`PluginMessage::Validated`].
    Validate {
        id: u64,
        plugin: String,
        config: Value,
    },
    Cancel {
        id: u64,
    },
    /// The answer to the plugin's [`PluginMessage::HostCall`] numbered `call`.
    HostReply {
        call: u64,
        result: Result<Value, PluginError>,
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
    /// The plugin accepts the host's hello.
    Ready,
    /// The plugin does not speak the host's protocol; it exits after saying why.
    Refused {
        message: String,
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
    Validated {
        id: u64,
        #[serde(default)]
        issues: Vec<ConfigIssue>,
    },
    /// A request to the host on behalf of run `id`; `call` numbers it for the reply.
    HostCall {
        id: u64,
        call: u64,
        /// Boxed: vectors make it the largest message by far.
        request: Box<HostRequest>,
    },
}

/// What a plugin process may ask the host for while it runs a call.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum HostRequest {
    /// Text generation: `request` is an `llm.generate` `with:` map; the reply is that
    /// step's outputs.
    Generate { request: Value },
    /// Stores embeddings in a collection; the reply is `null`.
    UpsertVectors {
        collection: String,
        model: EmbeddingModel,
        records: Vec<VectorRecord>,
    },
    /// The `k` nearest vectors; the reply is a `SearchResult`.
    SearchVectors {
        collection: String,
        model: EmbeddingModel,
        query: Vec<f32>,
        k: usize,
        #[serde(default)]
        mode: SearchMode,
    },
}

impl PluginMessage {
    /// The call a message belongs to (`None` for the handshake).
    pub fn call_id(&self) -> Option<u64> {
        match self {
            PluginMessage::Progress { id, .. }
            | PluginMessage::Log { id, .. }
            | PluginMessage::Result { id, .. }
            | PluginMessage::Error { id, .. }
            | PluginMessage::Validated { id, .. }
            | PluginMessage::HostCall { id, .. } => Some(*id),
            PluginMessage::Hello { .. } | PluginMessage::Ready | PluginMessage::Refused { .. } => {
                None
            }
        }
    }

    /// Whether the message ends its call.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            PluginMessage::Result { .. }
                | PluginMessage::Error { .. }
                | PluginMessage::Validated { .. }
        )
    }
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
    #[error("{plugin} speaks plugin protocol {plugin_protocol}, but {host} speaks {host_protocol}; rebuild the plugin against mediaflow-protocol {host_protocol} (or use a mediaflow that speaks {plugin_protocol})")]
    Version {
        /// The plugin binary and its version.
        plugin: String,
        plugin_protocol: u32,
        /// The host program and its version.
        host: String,
        host_protocol: u32,
    },
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

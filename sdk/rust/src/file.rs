//! Files: `file` inputs and artifacts, passed between steps by reference.

/// A file in mediaflow's artifact store, named by the sha256 of its bytes: a `file` input
/// of the workflow or an artifact from an earlier step. Steps pass these references, never
/// the bytes; [`artifacts::read`](crate::artifacts::read) gets the bytes (with
/// `permissions: [artifacts]`), [`artifacts::write`](crate::artifacts::write) stores new
/// ones. A `File` field in `Config` is a `file` input port, in `Output` a `file` output.
///
/// The very type the host uses (`mediaflow_types::ArtifactRef`), so both sides recognise
/// and describe files alike.
pub use mediaflow_types::ArtifactRef as File;
pub use mediaflow_types::FILE_KEYWORD;

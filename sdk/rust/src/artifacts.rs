//! The step's files (needs `permissions: [artifacts]`).

use crate::bindings::mediaflow::plugin::artifacts as host;
use crate::error::host_call;
use crate::{Error, File};

/// The bytes of a file that was passed to the step in `with:`; other files cannot be read.
pub fn read(file: &File) -> Result<Vec<u8>, Error> {
    let reference =
        serde_json::to_string(file).map_err(|e| Error::new("bad_input", e.to_string()))?;
    host_call("artifacts", || host::read(&reference))
}

/// Stores bytes as a new artifact; return the [`File`] in an output.
pub fn write(name: &str, media_type: &str, data: &[u8]) -> Result<File, Error> {
    let out = host_call("artifacts", || host::write(name, media_type, data))?;
    serde_json::from_str(&out).map_err(|e| Error::new("bad_output", e.to_string()))
}

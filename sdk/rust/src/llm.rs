//! Text generation through the host's `llm.generate` (needs `permissions: [llm]`).

use crate::error::host_call;
use crate::{Error, Value};

/// `request` is an `llm.generate` `with:` map (`model`, `prompt`, `max_tokens`…);
/// returns that step's outputs (`text`, `json`, `tokens`…).
pub fn generate(request: &Value) -> Result<Value, Error> {
    let request = request.to_string();
    let out = host_call("llm", || {
        crate::bindings::mediaflow::plugin::llm::generate(&request)
    })?;
    serde_json::from_str(&out).map_err(|e| Error::new("bad_output", e.to_string()))
}

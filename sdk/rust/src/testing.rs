//! Calls a plugin natively the way the host calls the component, for its unit tests
//! (`cargo test` on the plugin crate). There is no host then: [`log`](crate::log) writes to
//! stderr, and [`llm`](crate::llm), [`artifacts`](crate::artifacts) and [`kv`](crate::kv)
//! return an error with code `unavailable`.
//!
//! ```
//! # use mediaflow_sdk::*;
//! # #[derive(Deserialize, JsonSchema)]
//! # struct Config { text: String }
//! # #[derive(Serialize, JsonSchema)]
//! # struct Output { text: String }
//! # struct Shout;
//! # impl Plugin for Shout {
//! #     type Config = Config;
//! #     type Output = Output;
//! #     fn describe() -> Descriptor { Descriptor::from_config::<Config>("t.s", "1.0.0", "") }
//! #     fn run(c: Config) -> Result<Output, Error> { Ok(Output { text: c.text.to_uppercase() }) }
//! # }
//! let out = testing::run::<Shout>(json!({"text": "hi"})).unwrap();
//! assert_eq!(out, json!({"text": "HI"}));
//! assert!(testing::validate::<Shout>(&json!({"text": "${{ inputs.x }}"})).is_empty());
//! ```

use crate::{Error, Issue, Plugin, Value};

/// What the WIT `validate` export answers for this `with:` map.
pub fn validate<P: Plugin>(with: &Value) -> Vec<Issue> {
    crate::glue::check::<P>(with)
}

/// What the WIT `run` export answers for this `with:` map (inputs and settings together).
pub fn run<P: Plugin>(with: Value) -> Result<Value, Error> {
    crate::glue::run_with::<P>(with)
}

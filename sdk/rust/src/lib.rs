//! Write mediaflow plugins in Rust.
//!
//! A plugin's settings are one struct (`Config`, the step's whole `with:` map) and its
//! outputs another (`Output`). Their `JsonSchema` derives are the plugin's config schema —
//! doc comments become descriptions, `#[serde(default)]`s become defaults — and its output
//! ports. Implement [`Plugin`], export it with [`export!`], and compile for
//! `wasm32-wasip2` (`mediaflow plugin build` does it):
//!
//! ```
//! use mediaflow_sdk::*;
//!
//! #[derive(Deserialize, JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct Config {
//!     /// The text to shout.
//!     text: String,
//!     /// How many exclamation marks.
//!     #[serde(default = "one")]
//!     #[schemars(range(min = 0, max = 10))]
//!     marks: u32,
//! }
//!
//! fn one() -> u32 {
//!     1
//! }
//!
//! #[derive(Serialize, JsonSchema)]
//! struct Output {
//!     text: String,
//! }
//!
//! struct Shout;
//!
//! impl Plugin for Shout {
//!     type Config = Config;
//!     type Output = Output;
//!
//!     fn describe() -> Descriptor {
//!         Descriptor::from_config::<Config>("text.shout", "1.0.0", "Shouts")
//!             .inputs(["text"])
//!             .outputs_from::<Output>()
//!     }
//!
//!     fn run(c: Config) -> Result<Output, Error> {
//!         Ok(Output { text: c.text.to_uppercase() + &"!".repeat(c.marks as usize) })
//!     }
//! }
//!
//! export!(Shout);
//! # fn main() {}
//! ```
//!
//! The derives need `serde` among the plugin crate's own dependencies (serde's derive
//! names its crate by path); `mediaflow plugin new` writes it into `Cargo.toml`.
//!
//! The host runs every call in a fresh sandbox: no files, no environment, no network, a
//! wall clock stuck at 1970 unless the step grants `clock`. [`log`] always works;
//! [`llm`], [`artifacts`] and [`kv`] work when the step grants them in `permissions:`,
//! and otherwise return an [`Error`] with code `permission_denied`.

// Lets generated code name this crate the way plugin crates do.
extern crate self as mediaflow_sdk;

mod descriptor;
mod error;
mod file;
mod glue;

pub mod artifacts;
pub mod kv;
pub mod llm;
pub mod log;
pub mod testing;

pub use descriptor::Descriptor;
pub use error::{Error, Issue};
pub use file::{File, FILE_KEYWORD};
pub use mediaflow_types::{schema_of, Port, ValueType};
pub use schemars::{self, JsonSchema};
pub use serde::{Deserialize, Serialize};
pub use serde_json::{json, Map, Value};

use serde::de::DeserializeOwned;

/// Bindings generated from `sdk/wit` (WIT package `mediaflow:plugin@1.0.0`).
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "mediaflow_sdk::bindings",
        runtime_path: "mediaflow_sdk::__private::wit_bindgen::rt",
    });
}

/// The version of the WIT package this SDK implements.
pub const WIT_VERSION: &str = "1.0.0";

/// A mediaflow plugin: its settings and outputs are Rust types.
///
/// `Config` is the step's **whole** `with:` map — data inputs and settings together, as
/// the workflow author wrote them; [`Descriptor::inputs`] only says which of its fields
/// are data ports. `Output` is serialized to the step's output object.
pub trait Plugin {
    /// The whole `with:` map, parsed. Its schema is the plugin's config schema.
    type Config: DeserializeOwned + JsonSchema;
    /// The outputs. Its schema's properties are the plugin's output ports.
    type Output: Serialize + JsonSchema;

    /// Name, version, ports and config schema, usually
    /// `Descriptor::from_config::<Config>(…).inputs([…]).outputs_from::<Output>()`.
    /// Called once when the plugin is loaded.
    fn describe() -> Descriptor;

    /// Checks beyond the schema (two settings that exclude each other, a list entry that
    /// must be one word). Return [`Issue`]s at JSON pointers into `with:`. Runs when the
    /// workflow is compiled and before each run; no capabilities are granted here. A
    /// config that does not parse because a `${{ }}` expression stands where a number or a
    /// list will be is not checked until the expression is resolved.
    fn check(_config: &Self::Config) -> Vec<Issue> {
        Vec::new()
    }

    /// Runs one step.
    fn run(config: Self::Config) -> Result<Self::Output, Error>;
}

#[doc(hidden)]
pub mod __private {
    pub use crate::glue::{describe, run, validate};
    pub use wit_bindgen;
}

/// Exports a [`Plugin`] as the component's `describe`, `validate` and `run`.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        #[doc(hidden)]
        struct __MediaflowExport;

        impl $crate::bindings::Guest for __MediaflowExport {
            fn describe() -> $crate::bindings::mediaflow::plugin::types::Descriptor {
                $crate::__private::describe::<$plugin>()
            }
            fn validate(
                config: ::std::string::String,
            ) -> ::std::vec::Vec<$crate::bindings::mediaflow::plugin::types::ConfigIssue> {
                $crate::__private::validate::<$plugin>(&config)
            }
            fn run(
                config: ::std::string::String,
                inputs: ::std::string::String,
            ) -> ::std::result::Result<
                ::std::string::String,
                $crate::bindings::mediaflow::plugin::types::PluginError,
            > {
                $crate::__private::run::<$plugin>(&config, &inputs)
            }
        }

        $crate::bindings::__export_world!(__MediaflowExport with_types_in $crate::bindings);
    };
}

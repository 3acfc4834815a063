//! Structured output that is valid whenever the step succeeds: a schema-driven JSON reader
//! ([`cursor`]) over the part of JSON Schema it can enforce ([`schema`]).

mod completion;
pub mod cursor;
pub mod schema;
#[cfg(test)]
mod tests;

pub use cursor::Cursor;
pub use schema::{compile, Node};

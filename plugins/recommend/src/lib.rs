//! mediaflow's recommender: reading events and a catalogue in the run database, five models
//! (freshness-weighted popularity, item–item collaborative filtering, implicit ALS matrix
//! factorisation, content-based on `text.embed` vectors, and a hybrid with fallbacks for new
//! users and new items), each recommendation with a reason, and the offline evaluation
//! (`mediaflow eval recommend`).
//!
//! The plugins (`events.record`, `events.import`, `recommend.train`, `recommend.rank`) run
//! inside the engine's process: they read and write the run database, and they are pure
//! Rust (nalgebra, sprs, rayon), with no C++ to isolate.

pub mod data;
pub mod eval;
pub mod import;
pub mod model;
mod plugins;
pub mod synth;

pub use data::{Dataset, History, KindWeights};
pub use eval::{EvalReport, EvalRow, Split};
pub use model::{ModelKind, Recommendation, Recommender, TrainConfig};
pub use plugins::{item_text, plugins, store_items};

//! `mediaflow-onnx`: ONNX models on tract for mediaflow, in a plugin process of their own.
//! The binary serves `image.classify` ([`image_plugin`]), `text.embed`, `text.classify` and
//! `text.sentiment` ([`text_plugin`]), `text.search` ([`search_plugin`]); `mediaflow-onnx train-classifier` ([`train`]) is
//! `mediaflow train classifier`.
//!
//! tract is pure Rust and could run inside `mediaflow` itself. It runs here instead, for
//! three reasons: a hostile image or model that exhausts memory or aborts takes down this
//! process (which the host restarts) and not the run; tract-onnx is a large build that the
//! engine's crates and tests need not pay for; and one long-lived process keeps models
//! loaded and batches the concurrent calls of a `for_each`, one batching worker per core
//! ([`batch`]). A call costs about
//! 0.4 ms of protocol overhead against 3–60 ms of inference.

pub mod batch;
pub mod classify;
pub mod embed;
pub mod head;
pub mod image;
pub mod image_plugin;
pub mod model;
pub mod rewrite;
pub mod runtime;
pub mod search_plugin;
pub mod text_plugin;
pub mod train;

use std::sync::Arc;

use mediaflow_plugin_api::Plugin;

/// Every plugin this process serves, sharing one [`runtime::Runtime`].
pub fn plugins() -> Vec<Arc<dyn Plugin>> {
    let rt = runtime::Runtime::new();
    vec![
        mediaflow_plugin_api::typed(image_plugin::ClassifyImage::new(rt.clone())),
        mediaflow_plugin_api::typed(text_plugin::Embed::new(rt.clone())),
        mediaflow_plugin_api::typed(text_plugin::ClassifyText::new(rt.clone())),
        mediaflow_plugin_api::typed(text_plugin::SentimentPlugin::new(rt.clone())),
        mediaflow_plugin_api::typed(search_plugin::Search::new(rt)),
    ]
}

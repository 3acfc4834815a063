//! Converters: what turns a downloaded model into the format a plugin reads. The store
//! knows none by itself; whoever opens it to pull registers them
//! ([`ModelStore::with_converter`](crate::ModelStore::with_converter)).

use std::path::Path;

/// Turns a downloaded model into the format a plugin reads (`convert.from` in the catalog).
pub trait Converter: Send + Sync {
    /// The name catalog entries use in `convert.from`.
    fn name(&self) -> &str;

    /// Converts `input` (the joined, verified download) into `out`. `vocabulary` is the file
    /// the entry's `convert.vocabulary` names, if it names one.
    fn convert(
        &self,
        input: &Path,
        vocabulary: Option<&Path>,
        out: &Path,
    ) -> Result<(), ConvertError>;
}

/// Why a conversion failed: a message, and the error behind it if there is one.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConvertError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl ConvertError {
    pub fn new(message: impl Into<String>) -> Self {
        ConvertError {
            message: message.into(),
            source: None,
        }
    }

    pub fn with_source(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        ConvertError {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

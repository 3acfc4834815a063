use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{ArtifactRef, Artifacts, Permission, PluginError, Vectors};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// Where a step's progress and log lines go (the engine stores and relays them).
pub trait EventSink: Send + Sync {
    fn progress(&self, fraction: f32, message: Option<&str>);
    fn log(&self, level: LogLevel, message: &str);
}

/// A key-value namespace belonging to one plugin, kept in the run database.
#[async_trait::async_trait]
pub trait KeyValue: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PluginError>;
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), PluginError>;
    /// Whether the key existed.
    async fn delete(&self, key: &str) -> Result<bool, PluginError>;
    /// Keys starting with `prefix`, sorted.
    async fn keys(&self, prefix: &str) -> Result<Vec<String>, PluginError>;
}

/// Text generation as the host offers it to plugins (`permissions: [llm]` for sandboxed
/// ones).
#[async_trait::async_trait]
pub trait LlmProvider: Send + Sync {
    /// `request` is an `llm.generate` `with:` map (`model`, `prompt`, `max_tokens` …);
    /// the result is that step's outputs (`text`, `json` …).
    async fn generate(&self, request: Value, cx: &RunContext) -> Result<Value, PluginError>;
}

/// What a running step can see of the world.
#[derive(Clone)]
pub struct RunContext {
    pub run_id: String,
    pub step_id: String,
    /// Position in a `for_each` fan-out, if any.
    pub item_index: Option<usize>,
    /// 1 for the first attempt.
    pub attempt: u32,
    cancel: CancellationToken,
    events: Arc<dyn EventSink>,
    artifacts: Arc<dyn Artifacts>,
    permissions: Arc<[Permission]>,
    kv: Option<Arc<dyn KeyValue>>,
    llm: Option<Arc<dyn LlmProvider>>,
    vectors: Option<Arc<dyn Vectors>>,
    extensions: Vec<Arc<dyn std::any::Any + Send + Sync>>,
}

impl RunContext {
    pub fn new(
        run_id: String,
        step_id: String,
        item_index: Option<usize>,
        attempt: u32,
        cancel: CancellationToken,
        events: Arc<dyn EventSink>,
        artifacts: Arc<dyn Artifacts>,
    ) -> Self {
        RunContext {
            run_id,
            step_id,
            item_index,
            attempt,
            cancel,
            events,
            artifacts,
            permissions: Arc::from(Vec::new()),
            kv: None,
            llm: None,
            vectors: None,
            extensions: Vec::new(),
        }
    }

    /// The capabilities the step grants (`permissions:` in the workflow). Native plugins are
    /// trusted and may ignore them; sandboxed plugins get only these.
    pub fn with_permissions(mut self, permissions: Arc<[Permission]>) -> Self {
        self.permissions = permissions;
        self
    }

    /// The plugin's own key-value namespace, kept across runs.
    pub fn with_kv(mut self, kv: Arc<dyn KeyValue>) -> Self {
        self.kv = Some(kv);
        self
    }

    /// The host's text generation.
    pub fn with_llm(mut self, llm: Option<Arc<dyn LlmProvider>>) -> Self {
        self.llm = llm;
        self
    }

    /// The host's embedding collections.
    pub fn with_vectors(mut self, vectors: Option<Arc<dyn Vectors>>) -> Self {
        self.vectors = vectors;
        self
    }

    /// A service of the host process, found by its type: how plugins compiled into the
    /// host reach what only the host has (the engine adds its run database, which
    /// `recommend.*` and `events.*` read and write). It never crosses a process or sandbox
    /// boundary: plugin processes and WebAssembly components have none.
    pub fn with_extension<T: std::any::Any + Send + Sync>(mut self, value: Arc<T>) -> Self {
        self.extensions.push(value);
        self
    }

    /// The host service of type `T`, if the host added one.
    pub fn extension<T: std::any::Any + Send + Sync>(&self) -> Option<&T> {
        self.extensions.iter().find_map(|e| e.downcast_ref::<T>())
    }

    /// The same step seen with another cancellation token (a child of this one, say).
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    pub fn permissions(&self) -> &[Permission] {
        &self.permissions
    }

    pub fn is_granted(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }

    /// The plugin's key-value namespace, when the host has one.
    pub fn kv(&self) -> Option<&dyn KeyValue> {
        self.kv.as_deref()
    }

    /// The host's text generation, when it has one.
    pub fn llm(&self) -> Option<&Arc<dyn LlmProvider>> {
        self.llm.as_ref()
    }

    /// The host's embedding collections, when it keeps them.
    pub fn vectors(&self) -> Option<&Arc<dyn Vectors>> {
        self.vectors.as_ref()
    }

    /// Whether the step has been told to stop (Ctrl-C, timeout). Long-running plugins poll
    /// this or await [`RunContext::cancelled`].
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when the step is told to stop.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// The token itself, for handing to helper tasks.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Reports progress, `fraction` in `0.0..=1.0`.
    pub fn progress(&self, fraction: f32, message: Option<&str>) {
        let fraction = if fraction.is_finite() { fraction } else { 0.0 };
        self.events.progress(fraction.clamp(0.0, 1.0), message);
    }

    pub fn log(&self, level: LogLevel, message: &str) {
        self.events.log(level, message);
    }

    pub fn info(&self, message: &str) {
        self.log(LogLevel::Info, message);
    }

    pub fn warn(&self, message: &str) {
        self.log(LogLevel::Warn, message);
    }

    pub fn artifacts(&self) -> &dyn Artifacts {
        self.artifacts.as_ref()
    }

    /// Shortcut for `artifacts().path(..)`.
    pub async fn artifact_path(&self, artifact: &ArtifactRef) -> Result<PathBuf, PluginError> {
        self.artifacts.path(artifact).await
    }
}

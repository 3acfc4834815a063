//! Persistence for mediaflow: workflow definitions, runs, step results, step logs, the step
//! cache, the artifact index, and the reading events and recommendations of
//! `mediaflow-recommend`, on SQLite (embedded, the default) or PostgreSQL.
//!
//! Both backends share one implementation through sqlx's `Any` driver; only the migrations
//! differ. Every write is committed before it returns, which is what makes crash resume work.

mod artifacts;
mod blobs;
mod dispatch;
mod embeddings;
mod events;
mod feeds;
mod kv;
mod queue;
mod records;
mod retry;
mod schedules;
mod sql;
mod tokens;
mod url;

pub use artifacts::{guess_media_type, ArtifactStore};
pub use dispatch::{Listener, RunningTask, DONE_CHANNEL};
pub use embeddings::{CollectionInfo, EmbeddingDetails, EmbeddingRow};
pub use events::{Interaction, ItemRecord, RecommendationRow, StoredRecommendation};
pub use feeds::FeedClaim;
pub use kv::{KV_MAX_KEY, KV_MAX_VALUE};
pub use queue::{NewTask, Requeued, TaskRecord, TaskState, WorkerInfo, QUEUE_CHANNEL};
pub use records::{LogRecord, RunFilter, RunRecord, RunStatus, StepRecord, StepStatus};
pub use retry::{is_transient, DEFAULT_RETRY_WINDOW};
pub use schedules::TickRecord;
pub use sql::{Backend, Store};
pub use tokens::TokenRecord;
pub use url::redact_url;

/// Errors from the store. Connection errors name the database without its password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to the database at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("database URL `{url}` is not supported: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl { url: String },
    #[error("cannot migrate the database at {url}: {source}")]
    Migrate {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error(
        "{path} is not a SQLite database (it does not start with the SQLite header): \
         move it away to start a new one, or pass --database-url for another database"
    )]
    NotSqlite { path: String },
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    #[error("stored JSON is corrupt in {what}: {source}")]
    Corrupt {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("run `{run_id}` is no longer driven by {owner}: another process took it over")]
    Fenced { run_id: String, owner: String },
    #[error("collection `{collection}` holds vectors of {stored}, not of {given}")]
    EmbeddingModel {
        collection: String,
        stored: String,
        given: String,
    },
    #[error("no run with id `{0}`")]
    RunNotFound(String),
    #[error("no artifact with sha256 {0}")]
    ArtifactNotFound(String),
}

impl StoreError {
    /// Whether the error may go away by itself (the database restarting, a lock held for a
    /// moment), so the operation that met it is worth retrying later.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Query(e) | StoreError::Connect { source: e, .. } => is_transient(e),
            _ => false,
        }
    }
}

/// A store error as a step's error (code `database`): retryable when it may go away by
/// itself (the database restarting), not when retrying would meet it again.
impl From<StoreError> for mediaflow_plugin_api::PluginError {
    fn from(e: StoreError) -> Self {
        let transient = e.is_transient();
        let err = mediaflow_plugin_api::PluginError::new("database", e.to_string());
        if transient {
            err.retryable()
        } else {
            err
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

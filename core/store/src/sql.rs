use std::path::Path;

use serde_json::Value;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

use crate::records::*;
use crate::url::{redact_url, sqlite_path};
use crate::{now_ms, Result, StoreError};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database a [`Store`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A URL that may hold a password: shown as `***`.
#[derive(Clone)]
struct SecretUrl(std::sync::Arc<str>);

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The database behind mediaflow: one connection pool, either backend.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: AnyPool,
    backend: Backend,
    url: String,
    /// The URL as given, password and all: only to open more connections (`LISTEN`).
    secret_url: SecretUrl,
    /// How long a statement that failed transiently is tried again.
    retry_window: std::time::Duration,
}

macro_rules! run_columns {
    () => {
        "id, workflow_hash, workflow_name, status, inputs, options, outputs, error, \
         created_at, finished_at, resumed_count, owner, heartbeat_at"
    };
}

/// `$first, $first+1, …` for `n` placeholders: the lists of statements built for a
/// number of values. Made of placeholder numbers only, never of the data.
pub(crate) fn numbered(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($1, $2, …), (…)` for `rows` rows of `cols` columns.
pub(crate) fn value_rows(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", numbered(r * cols + 1, cols)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn json_text(v: &Value) -> String {
    v.to_string()
}

fn parse_json(what: &str, text: Option<String>) -> Result<Option<Value>> {
    match text {
        None => Ok(None),
        Some(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|source| StoreError::Corrupt {
                what: what.to_owned(),
                source,
            }),
    }
}

/// The first bytes of every SQLite 3 database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Refuses at once a file that exists, is not empty and is not an SQLite database (SQLite
/// itself would only fail on the first query, and the pool would retry it until its
/// timeout).
fn check_sqlite_header(path: &Path) -> Result<()> {
    use std::io::Read;
    let mut head = Vec::with_capacity(SQLITE_HEADER.len());
    match std::fs::File::open(path) {
        Ok(f) => f
            .take(SQLITE_HEADER.len() as u64)
            .read_to_end(&mut head)
            .map_err(|source| StoreError::Io {
                path: path.display().to_string(),
                source,
            })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StoreError::Io {
                path: path.display().to_string(),
                source,
            })
        }
    };
    if head.is_empty() || head == SQLITE_HEADER {
        Ok(())
    } else {
        Err(StoreError::NotSqlite {
            path: path.display().to_string(),
        })
    }
}

/// An exclusive lock on `DB.migrate.lock`, held while migrations run.
struct MigrationLock(std::fs::File);

impl MigrationLock {
    async fn take(db: &Path) -> Result<MigrationLock> {
        let mut name = db.as_os_str().to_owned();
        name.push(".migrate.lock");
        let path = std::path::PathBuf::from(name);
        let io_error = |source| StoreError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error)?;
        let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
            .await
            .map_err(|e| io_error(std::io::Error::other(e)))?
            .map_err(io_error)?;
        Ok(MigrationLock(file))
    }
}

impl Drop for MigrationLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// `Err(Fenced)` when a write fenced to `owner` touched no row.
fn fenced(run_id: &str, owner: &str, rows: u64) -> Result<()> {
    if rows == 0 {
        Err(StoreError::Fenced {
            run_id: run_id.to_owned(),
            owner: owner.to_owned(),
        })
    } else {
        Ok(())
    }
}

fn index_to_db(i: Option<usize>) -> i64 {
    i.map(|i| i as i64).unwrap_or(-1)
}

fn index_from_db(i: i64) -> Option<usize> {
    usize::try_from(i).ok()
}

impl Store {
    /// The URL this store connected to (with its password: never for display).
    pub(crate) fn connect_url(&self) -> &str {
        &self.secret_url.0
    }
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path`.
    pub async fn open_sqlite(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        Store::connect(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    /// An SQLite database that lives in memory and vanishes with the store.
    pub async fn in_memory() -> Result<Store> {
        Store::connect("sqlite::memory:").await
    }

    /// Connects to `sqlite://…` or `postgres://…` and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl {
                url: redact_url(url),
            });
        };
        let file = match backend {
            Backend::Sqlite => sqlite_path(url),
            Backend::Postgres => None,
        };
        if let Some(path) = &file {
            check_sqlite_header(path)?;
        }
        let memory = backend == Backend::Sqlite && file.is_none();
        // Several processes opening a new SQLite file at once would each find it
        // unmigrated and run the same migrations (PostgreSQL's migrator takes an advisory
        // lock; SQLite's has none): they take turns, from connecting to the last migration,
        // on a lock file beside the database.
        let _turn = match &file {
            Some(path) => Some(MigrationLock::take(path).await?),
            None => None,
        };
        let mut options = AnyPoolOptions::new().acquire_timeout(std::time::Duration::from_secs(10));
        options = match backend {
            // One connection: an in-memory database exists per connection, and SQLite
            // serialises writers anyway.
            Backend::Sqlite if memory => options.max_connections(1).min_connections(1),
            // `synchronous = NORMAL` in WAL mode: a commit survives the process dying
            // (`kill -9`, a panic) because it is in the WAL file, which the OS keeps; only
            // an OS crash or power loss can take back the last commits, never corrupting
            // the file. That is safe enough: what such a loss takes back is a step's
            // record written after it ran, and resume treats a step without a record as
            // not run, so it runs again — the at-least-once a step already has across a
            // crash between its side effect and its record. FULL would add an fsync to
            // every step record.
            Backend::Sqlite => options.max_connections(4).after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000;")
                        .await?;
                    Ok(())
                })
            }),
            Backend::Postgres => options.max_connections(8),
        };
        let pool = options
            .connect(url)
            .await
            .map_err(|source| StoreError::Connect {
                url: redact_url(url),
                source,
            })?;
        if backend == Backend::Sqlite && !memory {
            pool.execute("PRAGMA journal_mode = WAL")
                .await
                .map_err(|source| StoreError::Connect {
                    url: redact_url(url),
                    source,
                })?;
        }
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                url: redact_url(url),
                source,
            })?;
        Ok(Store {
            pool,
            backend,
            url: redact_url(url),
            secret_url: SecretUrl(url.into()),
            retry_window: crate::retry::window_from_env(),
        })
    }

    /// Retries statements that fail transiently for `window` (default 15 s,
    /// `MEDIAFLOW_DB_RETRY_SECS`); zero turns retrying off.
    pub fn with_retry_window(mut self, window: std::time::Duration) -> Self {
        self.retry_window = window;
        self
    }

    /// Runs one statement, retrying transient failures (see [`crate::retry`]).
    pub(crate) async fn retry<T, F, Fut>(&self, op: F) -> std::result::Result<T, sqlx::Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, sqlx::Error>>,
    {
        crate::retry::retry(self.retry_window, op).await
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The database URL without its password.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// One round trip to the database, not retried: for health checks.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---- workflows -------------------------------------------------------------------

    /// Stores a workflow definition by content hash (idempotent).
    pub async fn put_workflow(
        &self,
        hash: &str,
        name: &str,
        source_path: Option<&str>,
        yaml: &str,
    ) -> Result<()> {
        self.retry(|| {
            sqlx::query(
                "INSERT INTO workflows (hash, name, source_path, yaml, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (hash) DO NOTHING",
            )
            .bind(hash)
            .bind(name)
            .bind(source_path)
            .bind(yaml)
            .bind(now_ms())
            .execute(&self.pool)
        })
        .await?;
        Ok(())
    }

    /// The YAML text and recorded path of a stored workflow.
    pub async fn get_workflow(&self, hash: &str) -> Result<Option<(String, Option<String>)>> {
        let row = self
            .retry(|| {
                sqlx::query("SELECT yaml, source_path FROM workflows WHERE hash = $1")
                    .bind(hash)
                    .fetch_optional(&self.pool)
            })
            .await?;
        Ok(row.map(|r| (r.get::<String, _>(0), r.get::<Option<String>, _>(1))))
    }

    // ---- runs ------------------------------------------------------------------------

    pub async fn create_run(&self, run: &RunRecord) -> Result<()> {
        self.retry(|| {
            sqlx::query(
                "INSERT INTO runs (id, workflow_hash, workflow_name, status, inputs, options, \
             created_at, resumed_count, owner, heartbeat_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&run.id)
            .bind(&run.workflow_hash)
            .bind(&run.workflow_name)
            .bind(run.status.as_str())
            .bind(json_text(&run.inputs))
            .bind(json_text(&run.options))
            .bind(run.created_at)
            .bind(run.resumed_count)
            .bind(run.owner.as_deref())
            .bind(run.heartbeat_at)
            .execute(&self.pool)
        })
        .await?;
        Ok(())
    }

    /// Takes a run over for `owner` (a resume), if it is still as `seen` read it: same
    /// status, owner and heartbeat. One conditional `UPDATE`; `false` when another process
    /// changed the run in between (it claimed the run first, or its owner is alive and
    /// beat). Every later write of the run is fenced to the new owner.
    pub async fn claim_run(&self, seen: &RunRecord, owner: &str) -> Result<bool> {
        let now = now_ms();
        let done = self
            .retry(|| {
                sqlx::query(
                    "UPDATE runs SET status = 'running', owner = $2, heartbeat_at = $3, \
             finished_at = NULL, resumed_count = resumed_count + 1 \
             WHERE id = $1 AND status = $4 AND owner IS NOT DISTINCT FROM $5 \
             AND heartbeat_at IS NOT DISTINCT FROM $6",
                )
                .bind(&seen.id)
                .bind(owner)
                .bind(now)
                .bind(seen.status.as_str())
                .bind(seen.owner.as_deref())
                .bind(seen.heartbeat_at)
                .execute(&self.pool)
            })
            .await?;
        if done.rows_affected() == 1 {
            return Ok(true);
        }
        // A retried claim whose first attempt committed but lost its reply finds the run
        // already changed: by this very claim, if it carries this owner and heartbeat.
        let run = self.get_run(&seen.id).await?;
        Ok(run.owner.as_deref() == Some(owner) && run.heartbeat_at == Some(now))
    }

    /// Proves `owner` is still driving run `id`; `Err(Fenced)` if another process owns it now.
    pub async fn heartbeat(&self, id: &str, owner: &str) -> Result<()> {
        let done = self
            .retry(|| {
                sqlx::query("UPDATE runs SET heartbeat_at = $2 WHERE id = $1 AND owner = $3")
                    .bind(id)
                    .bind(now_ms())
                    .bind(owner)
                    .execute(&self.pool)
            })
            .await?;
        fenced(id, owner, done.rows_affected())
    }

    /// Records how run `id` ended, if `owner` still owns it (`Err(Fenced)` otherwise).
    pub async fn finish_run(
        &self,
        id: &str,
        owner: &str,
        status: RunStatus,
        outputs: Option<&Value>,
        error: Option<&Value>,
    ) -> Result<()> {
        let done = self
            .retry(|| {
                sqlx::query(
                    "UPDATE runs SET status = $2, outputs = $3, error = $4, finished_at = $5 \
             WHERE id = $1 AND owner = $6",
                )
                .bind(id)
                .bind(status.as_str())
                .bind(outputs.map(json_text))
                .bind(error.map(json_text))
                .bind(now_ms())
                .bind(owner)
                .execute(&self.pool)
            })
            .await?;
        fenced(id, owner, done.rows_affected())
    }

    fn run_from_row(row: &AnyRow) -> Result<RunRecord> {
        let id: String = row.try_get(0)?;
        let status: String = row.try_get(3)?;
        Ok(RunRecord {
            workflow_hash: row.try_get(1)?,
            workflow_name: row.try_get(2)?,
            status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
            inputs: parse_json("runs.inputs", row.try_get(4)?)?.unwrap_or(Value::Null),
            options: parse_json("runs.options", row.try_get(5)?)?.unwrap_or(Value::Null),
            outputs: parse_json("runs.outputs", row.try_get(6)?)?,
            error: parse_json("runs.error", row.try_get(7)?)?,
            created_at: row.try_get(8)?,
            finished_at: row.try_get(9)?,
            resumed_count: row.try_get(10)?,
            owner: row.try_get(11)?,
            heartbeat_at: row.try_get(12)?,
            id,
        })
    }

    pub async fn get_run(&self, id: &str) -> Result<RunRecord> {
        let row = self
            .retry(|| {
                sqlx::query(concat!(
                    "SELECT ",
                    run_columns!(),
                    " FROM runs WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
            })
            .await?
            .ok_or_else(|| StoreError::RunNotFound(id.to_owned()))?;
        Self::run_from_row(&row)
    }

    /// Runs, newest first.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        let rows = self
            .retry(|| {
                sqlx::query(concat!(
                    "SELECT ",
                    run_columns!(),
                    " FROM runs WHERE ($1 IS NULL OR workflow_name = $1) \
             AND ($2 IS NULL OR status = $2) AND ($4 IS NULL OR created_at >= $4) \
             AND ($5 IS NULL OR created_at < $5 OR (created_at = $5 AND id < $6)) \
             ORDER BY created_at DESC, id DESC LIMIT $3"
                ))
                .bind(filter.workflow.as_deref())
                .bind(filter.status.map(|s| s.as_str()))
                .bind(filter.limit.unwrap_or(50))
                .bind(filter.since)
                .bind(filter.before.as_ref().map(|b| b.0))
                .bind(filter.before.as_ref().map(|b| b.1.as_str()).unwrap_or(""))
                .fetch_all(&self.pool)
            })
            .await?;
        rows.iter().map(Self::run_from_row).collect()
    }

    /// How many runs there are of each workflow in each status.
    pub async fn run_counts(&self) -> Result<Vec<(String, String, i64)>> {
        let rows = self
            .retry(|| {
                sqlx::query(
                    "SELECT workflow_name, status, COUNT(*) FROM runs \
                     GROUP BY workflow_name, status ORDER BY workflow_name, status",
                )
                .fetch_all(&self.pool)
            })
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    // ---- steps -----------------------------------------------------------------------

    /// Deletes the records of `steps` (and their items) in run `run_id`, so a re-run from
    /// a step starts them afresh. Fenced: only while `owner` owns the run.
    pub async fn forget_steps(&self, run_id: &str, owner: &str, steps: &[String]) -> Result<()> {
        for step in steps {
            self.retry(|| {
                sqlx::query(
                    "DELETE FROM step_runs WHERE run_id = $1 AND step_id = $2 \
                     AND EXISTS (SELECT 1 FROM runs WHERE id = $1 AND owner = $3)",
                )
                .bind(run_id)
                .bind(step)
                .bind(owner)
                .execute(&self.pool)
            })
            .await?;
        }
        let run = self.get_run(run_id).await?;
        fenced(
            run_id,
            owner,
            u64::from(run.owner.as_deref() == Some(owner)),
        )
    }

    /// Inserts or replaces the record of one step (or one item), keyed by run, step and
    /// item. Fenced: with a `worker`, only while that worker owns the run
    /// (`Err(Fenced)` otherwise), so a process that lost its run cannot overwrite the new
    /// owner's results.
    pub async fn upsert_step(&self, s: &StepRecord) -> Result<()> {
        let done = self
            .retry(|| {
                sqlx::query(
            "INSERT INTO step_runs (run_id, step_id, item_index, status, attempts, cache_key, \
             outputs, error, started_at, finished_at, duration_ms, worker, ran_on) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 \
             WHERE $12 IS NULL OR EXISTS (SELECT 1 FROM runs WHERE id = $1 AND owner = $12) \
             ON CONFLICT (run_id, step_id, item_index) DO UPDATE SET status = excluded.status, \
             attempts = excluded.attempts, cache_key = excluded.cache_key, \
             outputs = excluded.outputs, error = excluded.error, \
             started_at = excluded.started_at, finished_at = excluded.finished_at, \
             duration_ms = excluded.duration_ms, worker = excluded.worker, \
             ran_on = excluded.ran_on",
        )
        .bind(&s.run_id)
        .bind(&s.step_id)
        .bind(index_to_db(s.item_index))
        .bind(s.status.as_str())
        .bind(s.attempts as i64)
        .bind(s.cache_key.as_deref())
        .bind(s.outputs.as_ref().map(json_text))
        .bind(s.error.as_ref().map(json_text))
        .bind(s.started_at)
        .bind(s.finished_at)
        .bind(s.duration_ms)
        .bind(s.worker.as_deref())
        .bind(s.ran_on.as_deref())
        .execute(&self.pool)
            })
            .await?;
        match &s.worker {
            Some(owner) => fenced(&s.run_id, owner, done.rows_affected()),
            None => Ok(()),
        }
    }

    /// Every step record of a run, ordered by step and item.
    pub async fn steps(&self, run_id: &str) -> Result<Vec<StepRecord>> {
        let rows = self
            .retry(|| {
                sqlx::query(
            "SELECT run_id, step_id, item_index, status, attempts, cache_key, outputs, error, \
             started_at, finished_at, duration_ms, worker, ran_on FROM step_runs \
             WHERE run_id = $1 \
             ORDER BY started_at, step_id, item_index",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
            })
            .await?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get(3)?;
                let attempts: i64 = row.try_get(4)?;
                Ok(StepRecord {
                    run_id: row.try_get(0)?,
                    step_id: row.try_get(1)?,
                    item_index: index_from_db(row.try_get(2)?),
                    status: StepStatus::parse(&status).unwrap_or(StepStatus::Failed),
                    attempts: attempts.max(0) as u32,
                    cache_key: row.try_get(5)?,
                    outputs: parse_json("step_runs.outputs", row.try_get(6)?)?,
                    error: parse_json("step_runs.error", row.try_get(7)?)?,
                    started_at: row.try_get(8)?,
                    finished_at: row.try_get(9)?,
                    duration_ms: row.try_get(10)?,
                    worker: row.try_get(11)?,
                    ran_on: row.try_get(12)?,
                })
            })
            .collect()
    }

    // ---- logs ------------------------------------------------------------------------

    pub async fn append_log(
        &self,
        run_id: &str,
        step_id: &str,
        item_index: Option<usize>,
        level: &str,
        message: &str,
    ) -> Result<()> {
        self.retry(|| {
            sqlx::query(
                "INSERT INTO step_logs (run_id, step_id, item_index, ts, level, message) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(run_id)
            .bind(step_id)
            .bind(index_to_db(item_index))
            .bind(now_ms())
            .bind(level)
            .bind(message)
            .execute(&self.pool)
        })
        .await?;
        Ok(())
    }

    pub async fn logs(&self, run_id: &str) -> Result<Vec<LogRecord>> {
        let rows = self
            .retry(|| {
                sqlx::query(
            "SELECT step_id, item_index, ts, level, message FROM step_logs WHERE run_id = $1 \
             ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
            })
            .await?;
        rows.iter()
            .map(|r| {
                Ok(LogRecord {
                    step_id: r.try_get(0)?,
                    item_index: index_from_db(r.try_get(1)?),
                    ts: r.try_get(2)?,
                    level: r.try_get(3)?,
                    message: r.try_get(4)?,
                })
            })
            .collect()
    }

    // ---- step cache ------------------------------------------------------------------

    pub async fn cache_get(&self, key: &str) -> Result<Option<Value>> {
        let row = self
            .retry(|| {
                sqlx::query("SELECT outputs FROM step_cache WHERE cache_key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
            })
            .await?;
        match row {
            Some(r) => parse_json("step_cache.outputs", Some(r.try_get(0)?)),
            None => Ok(None),
        }
    }

    pub async fn cache_put(
        &self,
        key: &str,
        plugin: &str,
        outputs: &Value,
        run_id: &str,
        step_id: &str,
    ) -> Result<()> {
        self.retry(|| {
            sqlx::query(
                "INSERT INTO step_cache (cache_key, plugin, outputs, run_id, step_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (cache_key) DO UPDATE SET \
             outputs = excluded.outputs, run_id = excluded.run_id, step_id = excluded.step_id, \
             created_at = excluded.created_at",
            )
            .bind(key)
            .bind(plugin)
            .bind(json_text(outputs))
            .bind(run_id)
            .bind(step_id)
            .bind(now_ms())
            .execute(&self.pool)
        })
        .await?;
        Ok(())
    }

    // ---- artifacts -------------------------------------------------------------------

    pub(crate) async fn put_artifact_row(
        &self,
        sha256: &str,
        media_type: &str,
        size: u64,
        path: &str,
    ) -> Result<()> {
        self.retry(|| {
            sqlx::query(
                "INSERT INTO artifacts (sha256, media_type, size, path, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(sha256)
            .bind(media_type)
            .bind(size as i64)
            .bind(path)
            .bind(now_ms())
            .execute(&self.pool)
        })
        .await?;
        Ok(())
    }

    pub(crate) async fn artifact_path(&self, sha256: &str) -> Result<Option<String>> {
        let row = self
            .retry(|| {
                sqlx::query("SELECT path FROM artifacts WHERE sha256 = $1")
                    .bind(sha256)
                    .fetch_optional(&self.pool)
            })
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    /// The artifact stored under `sha256`: its file and media type, if indexed.
    pub async fn artifact_entry(&self, sha256: &str) -> Result<Option<(String, String)>> {
        let row = self
            .retry(|| {
                sqlx::query("SELECT path, media_type FROM artifacts WHERE sha256 = $1")
                    .bind(sha256)
                    .fetch_optional(&self.pool)
            })
            .await?;
        Ok(match row {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
            None => None,
        })
    }
}

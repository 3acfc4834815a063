//! Which workflow a request means, compiled: a name in the workflows directory (the
//! operator's files, kept compiled in a [`Catalog`]), or YAML text from the client
//! (untrusted: it compiles against the confined registry).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use mediaflow_engine::StoredWorkflow;
use mediaflow_plugin_api::Registry;
use mediaflow_workflow::{compile_file, compile_str, CompileError, Plan};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::problem::{ApiError, ErrorBody};
use crate::Service;

/// The file name submitted workflow text is compiled (and reported) under.
pub const SUBMITTED: &str = "submitted.yaml";

/// `s` is a workflow name (not YAML text): letters, digits, `-`, `_` and `.`, not
/// starting with a dot.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("compiling the workflow failed: {e}"),
        )
    })
}

fn compile_error(e: CompileError) -> ApiError {
    match e {
        CompileError::Invalid(d) => ApiError::invalid_workflow(&d),
        other => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_workflow",
            other.to_string(),
        ),
    }
}

/// One file of the workflows directory.
struct Entry {
    path: PathBuf,
    /// When the file was last compiled: its modification time and length.
    seen: (SystemTime, u64),
    /// The last version that compiled.
    good: Option<Arc<Plan>>,
    /// Why the file as it is now does not compile.
    error: Option<Value>,
}

/// The workflows directory, compiled. [`Catalog::refresh`] recompiles the files that
/// changed; a file that no longer compiles keeps its last good version (runs and
/// schedules go on with it) and reports its error.
pub struct Catalog {
    dir: Option<PathBuf>,
    registry: Registry,
    entries: Mutex<BTreeMap<String, Entry>>,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The workflow name of a file of the directory, if it is a workflow file.
fn name_of(path: &Path) -> Option<String> {
    let ext = path.extension()?.to_str()?;
    if ext != "yaml" && ext != "yml" {
        return None;
    }
    let name = path.file_stem()?.to_str()?;
    is_name(name).then(|| name.to_owned())
}

impl Catalog {
    pub fn new(dir: Option<PathBuf>, registry: Registry) -> Catalog {
        Catalog {
            dir,
            registry,
            entries: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the directory again and recompiles new and changed files (blocking: run it
    /// off the async workers). Returns what changed, as lines for the service's log.
    pub fn refresh(&self) -> Vec<String> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| Some((name_of(&p)?, p)))
            .collect();
        files.sort();
        let mut log = Vec::new();
        let mut changed = Vec::new();
        {
            let mut entries = self.lock();
            entries.retain(|name, _| {
                let keep = files.iter().any(|(n, _)| n == name);
                if !keep {
                    log.push(format!("workflow `{name}` was removed"));
                }
                keep
            });
            for (name, path) in &files {
                let Some(now) = stamp(path) else { continue };
                match entries.get(name) {
                    Some(e) if e.seen == now && &e.path == path => {}
                    _ => changed.push((name.clone(), path.clone(), now)),
                }
            }
        }
        // Compile outside the lock: a slow compile does not hold up requests.
        for (name, path, now) in changed {
            let result = compile_file(&path, &self.registry);
            let mut entries = self.lock();
            let entry = entries.entry(name.clone()).or_insert_with(|| Entry {
                path: path.clone(),
                seen: now,
                good: None,
                error: None,
            });
            entry.path = path.clone();
            entry.seen = now;
            match result {
                Ok(plan) => {
                    let first = entry.good.is_none();
                    entry.good = Some(Arc::new(plan));
                    entry.error = None;
                    log.push(format!(
                        "workflow `{name}` {}",
                        if first { "loaded" } else { "reloaded" }
                    ));
                }
                Err(e) => {
                    let err = compile_error(e);
                    log.push(format!(
                        "workflow `{name}` ({}) does not compile{}: {}",
                        path.display(),
                        if entry.good.is_some() {
                            "; its last good version stays in use"
                        } else {
                            ""
                        },
                        err.body.error.message
                    ));
                    entry.error = Some(err.to_json());
                }
            }
        }
        log
    }

    /// The compiled workflow `name`: its last good version.
    pub fn get(&self, name: &str) -> Result<Arc<Plan>, ApiError> {
        let Some(dir) = &self.dir else {
            return Err(ApiError::not_found(format!(
                "no workflow `{name}`: this service has no workflows directory"
            ))
            .with_help(
                "send the workflow's YAML text instead, or start `mediaflow serve --workflows DIR`",
            ));
        };
        let entries = self.lock();
        match entries.get(name) {
            Some(Entry {
                good: Some(plan), ..
            }) => Ok(plan.clone()),
            Some(Entry {
                error: Some(err), ..
            }) => {
                let mut e = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_workflow",
                    format!("workflow `{name}` does not compile"),
                );
                if let Ok(detail) = serde_json::from_value(err["error"].clone()) {
                    e.body.error = detail;
                }
                Err(e)
            }
            _ => Err(
                ApiError::not_found(format!("no workflow `{name}` in {}", dir.display()))
                    .with_help("GET /api/v1/workflows lists them"),
            ),
        }
    }

    /// Every workflow with a `schedule:`, by name.
    pub fn scheduled(&self) -> Vec<(String, Arc<Plan>)> {
        self.lock()
            .iter()
            .filter_map(|(name, e)| {
                let plan = e.good.as_ref()?;
                (!plan.schedules.is_empty()).then(|| (name.clone(), plan.clone()))
            })
            .collect()
    }

    /// Whether `file` (a stored run's workflow path) is a file of the directory.
    pub fn contains_file(&self, file: &str) -> bool {
        self.dir
            .as_ref()
            .is_some_and(|dir| Path::new(file).starts_with(dir))
    }

    fn infos(&self) -> Vec<WorkflowInfo> {
        self.lock()
            .iter()
            .map(|(name, e)| WorkflowInfo::new(name, e))
            .collect()
    }
}

/// Compiles what `POST /runs` named: a workflow of the workflows directory by name, or
/// workflow text.
pub async fn compile(service: &Service, workflow: &str) -> Result<Arc<Plan>, ApiError> {
    if is_name(workflow) {
        let catalog = service.catalog().clone();
        blocking(move || catalog.refresh()).await?;
        return service.catalog().get(workflow);
    }
    let registry = service.config().submitted_registry.clone();
    let text = workflow.to_owned();
    blocking(move || compile_str(SUBMITTED, &text, &registry))
        .await?
        .map(Arc::new)
        .map_err(|d| ApiError::invalid_workflow(&d))
}

/// Compiles a stored run's workflow again (to resume or re-run it): with the operator's
/// plugins if it came from the workflows directory, else with the confined ones.
pub async fn compile_stored(service: &Service, stored: &StoredWorkflow) -> Result<Plan, ApiError> {
    let registry: Registry = if service.catalog().contains_file(&stored.file) {
        service.config().registry.clone()
    } else {
        service.config().submitted_registry.clone()
    };
    let (file, yaml) = (stored.file.clone(), stored.yaml.clone());
    blocking(move || compile_str(&file, &yaml, &registry))
        .await?
        .map_err(|d| ApiError::invalid_workflow(&d))
}

/// A workflow of the workflows directory.
#[derive(Serialize, ToSchema)]
pub struct WorkflowInfo {
    /// What `POST /runs` takes as `workflow`: the file name without `.yaml`.
    pub name: String,
    pub file: String,
    /// The workflow's own `name:`.
    pub title: Option<String>,
    pub description: Option<String>,
    /// Its inputs: name, type, required, default, description.
    #[schema(value_type = Vec<Object>)]
    pub inputs: Vec<Value>,
    pub steps: usize,
    /// Its `schedule:` entries, each with its next five fire times (RFC 3339, UTC).
    #[schema(value_type = Vec<Object>)]
    pub schedules: Vec<Value>,
    /// When the file as it is now does not compile: the problems, as `POST /runs` would
    /// report them (the last good version, described above, is what runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
}

/// A schedule as the API and `mediaflow schedules` show it, with its next `n` ticks.
pub fn schedule_json(
    s: &mediaflow_workflow::Schedule,
    now: chrono::DateTime<chrono::Utc>,
    n: usize,
) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    v["next"] = s
        .upcoming(now, n)
        .iter()
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        .collect();
    v
}

impl WorkflowInfo {
    fn new(name: &str, e: &Entry) -> WorkflowInfo {
        let mut w = WorkflowInfo {
            name: name.to_owned(),
            file: e.path.display().to_string(),
            title: None,
            description: None,
            inputs: Vec::new(),
            steps: 0,
            schedules: Vec::new(),
            error: e.error.clone(),
        };
        if let Some(plan) = &e.good {
            w.title = Some(plan.name.clone());
            w.description = Some(plan.description.clone()).filter(|d| !d.is_empty());
            w.inputs = plan
                .inputs
                .iter()
                .map(|i| {
                    json!({
                        "name": i.name,
                        "type": i.ty.to_string(),
                        "required": i.required,
                        "default": i.default,
                        "description": i.description,
                    })
                })
                .collect();
            w.steps = plan.steps.len();
            let now = chrono::Utc::now();
            w.schedules = plan
                .schedules
                .iter()
                .map(|s| schedule_json(s, now, 5))
                .collect();
        }
        w
    }
}

#[utoipa::path(
    get, path = "/workflows", tag = "catalog",
    responses((status = 200, description = "The workflows of the workflows directory", body = Vec<WorkflowInfo>), (status = 401, description = "No valid token", body = ErrorBody))
)]
pub async fn list_workflows(
    State(service): State<Service>,
) -> Result<Json<Vec<WorkflowInfo>>, ApiError> {
    let catalog = service.catalog().clone();
    blocking(move || catalog.refresh()).await?;
    Ok(Json(service.catalog().infos()))
}

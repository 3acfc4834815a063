//! `/api/v1/runs`: start, list, show, follow, cancel and re-run runs.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::Json;
use futures::stream::{self, Stream, StreamExt};
use mediaflow_store::{RunFilter, RunStatus};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::sync::broadcast;
use utoipa::{IntoParams, ToSchema};

use crate::live::ApiEvent;
use crate::problem::{ApiError, ErrorBody};
use crate::{workflows, Service};

/// `POST /runs`: what to run.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    /// The name of a workflow in the service's workflows directory, or a workflow's YAML text.
    pub workflow: String,
    /// The run's inputs by name.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub inputs: Map<String, Value>,
}

/// A run that was started.
#[derive(Serialize, ToSchema)]
pub struct RunStarted {
    pub run_id: String,
    pub workflow: String,
    pub status: String,
}

/// The body of a request that carries JSON, or a 400 naming what is wrong with it.
pub fn body<T>(json: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    json.map(|Json(t)| t).map_err(|e| {
        ApiError::bad_request(format!("the request body is not valid: {}", e.body_text()))
    })
}

#[utoipa::path(
    post, path = "/runs", tag = "runs",
    request_body = CreateRun,
    responses(
        (status = 201, description = "The run started; follow it at /runs/{id}/events", body = RunStarted),
        (status = 400, description = "Bad inputs or body", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token's scope does not allow this", body = ErrorBody),
        (status = 404, description = "No workflow of that name", body = ErrorBody),
        (status = 422, description = "The workflow does not compile: each problem with its file, line and column", body = ErrorBody),
    )
)]
pub async fn create_run(
    State(service): State<Service>,
    json: Result<Json<CreateRun>, JsonRejection>,
) -> Result<(StatusCode, HeaderMap, Json<RunStarted>), ApiError> {
    let req = body(json)?;
    let plan = workflows::compile(&service, &req.workflow).await?;
    let created = service
        .engine()
        .create_run(plan.clone(), req.inputs)
        .await?;
    let run_id = created.run_id.clone();
    let engine = service.engine().clone();
    service.spawn_run(run_id.clone(), &plan, move |ctl| async move {
        engine.drive_created(created, ctl).await
    })?;
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/runs/{run_id}")) {
        headers.insert(header::LOCATION, v);
    }
    Ok((
        StatusCode::CREATED,
        headers,
        Json(RunStarted {
            run_id,
            workflow: plan.name.clone(),
            status: RunStatus::Running.as_str().to_owned(),
        }),
    ))
}

/// `GET /runs` filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `running`, `succeeded`, `failed` or `cancelled`.
    pub status: Option<String>,
    /// The workflow's name.
    pub workflow: Option<String>,
    /// Runs created at or after this instant: RFC 3339, or milliseconds since the epoch.
    pub since: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Runs per page (default 50, at most 500).
    pub limit: Option<i64>,
}

/// One page of runs, newest first.
#[derive(Serialize, ToSchema)]
pub struct RunPage {
    /// As `mediaflow runs --json` prints them.
    #[schema(value_type = Vec<Object>)]
    pub runs: Vec<mediaflow_store::RunRecord>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn parse_since(s: &str) -> Result<i64, ApiError> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            ApiError::bad_request(format!("`since={s}` is not a time: {e}"))
                .with_help("use RFC 3339 (2026-12-05T06:00:00Z) or milliseconds since the epoch")
        })
}

fn parse_cursor(s: &str) -> Result<(i64, String), ApiError> {
    s.split_once('.')
        .and_then(|(t, id)| Some((t.parse().ok()?, id.to_owned())))
        .ok_or_else(|| {
            ApiError::bad_request(format!("`cursor={s}` is not a cursor this service made"))
        })
}

#[utoipa::path(
    get, path = "/runs", tag = "runs",
    params(ListQuery),
    responses((status = 200, description = "OK", body = RunPage), (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody))
)]
pub async fn list_runs(
    State(service): State<Service>,
    Query(q): Query<ListQuery>,
) -> Result<Json<RunPage>, ApiError> {
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "`status={s}` is not a run status: use running, succeeded, failed or cancelled"
            ))
        })?),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let filter = RunFilter {
        workflow: q.workflow,
        status,
        limit: Some(limit + 1),
        since: q.since.as_deref().map(parse_since).transpose()?,
        before: q.cursor.as_deref().map(parse_cursor).transpose()?,
    };
    let mut runs = service.store().list_runs(&filter).await?;
    let more = runs.len() as i64 > limit;
    runs.truncate(limit as usize);
    let next_cursor = more
        .then(|| runs.last().map(|r| format!("{}.{}", r.created_at, r.id)))
        .flatten();
    Ok(Json(RunPage { runs, next_cursor }))
}

/// The run as `mediaflow show --json` prints it: status, inputs, outputs, steps, logs.
async fn run_json(service: &Service, id: &str) -> Result<Value, ApiError> {
    let report = service.engine().report(id).await?;
    let logs = service.store().logs(id).await?;
    let mut v = report.to_json();
    v["logs"] = serde_json::to_value(&logs).unwrap_or(Value::Null);
    v["live"] = Value::Bool(service.live().is_live(id));
    Ok(v)
}

#[utoipa::path(
    get, path = "/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run, as `mediaflow show --json` prints it", body = Object),
        (status = 404, description = "Not found", body = ErrorBody),
    )
)]
pub async fn get_run(
    State(service): State<Service>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(run_json(&service, &id).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Only this step's lines.
    pub step: Option<String>,
}

#[utoipa::path(
    get, path = "/runs/{id}/logs", tag = "runs",
    params(("id" = String, Path, description = "The run's id"), LogsQuery),
    responses((status = 200, description = "Log lines, oldest first", body = Vec<Object>), (status = 404, description = "Not found", body = ErrorBody))
)]
pub async fn run_logs(
    State(service): State<Service>,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Json<Value>, ApiError> {
    service.store().get_run(&id).await?;
    let mut logs = service.store().logs(&id).await?;
    if let Some(step) = &q.step {
        logs.retain(|l| &l.step_id == step);
    }
    Ok(Json(serde_json::to_value(&logs).unwrap_or(Value::Null)))
}

fn sse(e: &ApiEvent) -> SseEvent {
    SseEvent::default()
        .event(e.event)
        .json_data(&e.data)
        .unwrap_or_else(|_| SseEvent::default().event(e.event))
}

/// How often a run driven by another process is read again for its followers.
const POLL: Duration = Duration::from_millis(500);

#[utoipa::path(
    get, path = "/runs/{id}/events", tag = "runs",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "Server-sent events: `snapshot` (the run as GET /runs/{id} returns it) first, then \
            `step_started`, `step_progress`, `step_log`, `step_retrying`, `step_finished`, and last `run_finished`; \
            `lagged` when a slow client missed events", content_type = "text/event-stream", body = String),
        (status = 404, description = "Not found", body = ErrorBody),
    )
)]
pub async fn run_events(
    State(service): State<Service>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    // Subscribe before the snapshot is read, so nothing falls between the two.
    let stop = service.0.stop.clone();
    let rx = service.live().subscribe(&id);
    let snapshot = run_json(&service, &id).await?;
    let status = snapshot["status"].as_str().unwrap_or("").to_owned();
    let first = ApiEvent {
        event: "snapshot",
        data: snapshot,
    };
    let head = stream::iter([first]);
    let tail: std::pin::Pin<Box<dyn Stream<Item = ApiEvent> + Send>> = match rx {
        Some(rx) => Box::pin(follow_live(rx)),
        None if status == RunStatus::Running.as_str() => Box::pin(follow_stored(service, id)),
        None => Box::pin(stream::iter([ApiEvent::finished(&id, &status)])),
    };
    let events = head
        .chain(tail)
        .take_until(stop.cancelled_owned())
        .map(|e| Ok(sse(&e)));
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// The events of a run driven here, up to and including `run_finished`.
fn follow_live(rx: broadcast::Receiver<ApiEvent>) -> impl Stream<Item = ApiEvent> {
    stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Ok(e) => {
                let last = e.event == "run_finished";
                Some((e, (!last).then_some(rx)))
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                let e = ApiEvent {
                    event: "lagged",
                    data: json!({"missed": n}),
                };
                Some((e, Some(rx)))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    })
}

/// A run driven by another process (or by nobody, until it is resumed): its stored state,
/// read again every [`POLL`], as a `snapshot` whenever it changed, until it finishes.
fn follow_stored(service: Service, id: String) -> impl Stream<Item = ApiEvent> {
    stream::unfold(Some(Value::Null), move |last| {
        let service = service.clone();
        let id = id.clone();
        async move {
            let mut last = last?;
            loop {
                tokio::time::sleep(POLL).await;
                let Ok(now) = run_json(&service, &id).await else {
                    continue;
                };
                let status = now["status"].as_str().unwrap_or("").to_owned();
                if status != RunStatus::Running.as_str() {
                    return Some((ApiEvent::finished(&id, &status), None));
                }
                if now != last {
                    last = now.clone();
                    let e = ApiEvent {
                        event: "snapshot",
                        data: now,
                    };
                    return Some((e, Some(last)));
                }
            }
        }
    })
}

#[utoipa::path(
    post, path = "/runs/{id}/cancel", tag = "runs",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 202, description = "The run's steps are told to stop; it ends `cancelled`", body = Object),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "The run has finished, or another process drives it", body = ErrorBody),
    )
)]
pub async fn cancel_run(
    State(service): State<Service>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if service.live().cancel(&id) {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"run_id": id, "status": "cancelling"})),
        ));
    }
    let run = service.store().get_run(&id).await?;
    if run.status == RunStatus::Running {
        return Err(ApiError::conflict(format!(
            "run {id} is driven by another process ({}); cancel it there",
            run.owner.unwrap_or_default()
        )));
    }
    Err(ApiError::conflict(format!(
        "run {id} has already finished: {}",
        run.status
    )))
}

/// `POST /runs/{id}/rerun`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rerun {
    /// The step to run again; every step that depends on it runs again too.
    pub from: String,
}

#[utoipa::path(
    post, path = "/runs/{id}/rerun", tag = "runs",
    params(("id" = String, Path, description = "The run's id")),
    request_body = Rerun,
    responses(
        (status = 202, description = "The steps listed in `rerun` run again; the others keep their results", body = Object),
        (status = 400, description = "No such step", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 409, description = "The run is still running", body = ErrorBody),
        (status = 422, description = "The run's workflow no longer compiles", body = ErrorBody),
    )
)]
pub async fn rerun(
    State(service): State<Service>,
    Path(id): Path<String>,
    json: Result<Json<Rerun>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = body(json)?;
    let stored = service.engine().stored_workflow(&id).await?;
    if stored.run.status == RunStatus::Running {
        return Err(ApiError::conflict(format!(
            "run {id} is still running; cancel it or wait for it to end"
        )));
    }
    let plan = Arc::new(workflows::compile_stored(&service, &stored).await?);
    let again = mediaflow_engine::dependants(&plan, &req.from).ok_or_else(|| {
        ApiError::bad_request(format!("run {id} has no step `{}`", req.from)).with_help(format!(
            "its steps: {}",
            plan.steps
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let engine = service.engine().clone();
    let run_id = id.clone();
    let from = req.from.clone();
    service.spawn_run(id.clone(), &plan.clone(), move |ctl| async move {
        engine.rerun_from(&run_id, plan, &from, ctl).await
    })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"run_id": id, "status": "running", "rerun": again})),
    ))
}

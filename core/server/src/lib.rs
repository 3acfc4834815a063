//! `mediaflow serve`: mediaflow as a service a team leaves running. A REST API under
//! `/api/v1` (JSON in and out, bearer tokens with scopes), server-sent events to follow a
//! run live, `/health`, and the OpenAPI document generated from the handlers.
//!
//! The service drives the runs it starts in this process, on the engine it is given; runs
//! are stored as every run is, so `mediaflow show` and `resume` work on them too.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use std::collections::{HashMap, HashSet};

use axum::Router;
use mediaflow_engine::{Engine, Event};
use mediaflow_plugin_api::Registry;
use mediaflow_store::{ArtifactStore, Store};
use mediaflow_workflow::Plan;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod auth;
mod live;
mod metrics;
mod misc;
mod problem;
mod runs;
mod schedules;
mod web;
pub mod workflows;

pub use auth::{create_token, verify, NewToken, Scope};
pub use live::ApiEvent;
pub use problem::{ApiError, DiagnosticJson, ErrorBody};
pub use schedules::ON_TIME;
pub use workflows::{schedule_json, Catalog};

/// What the service needs: the engine it drives runs on and the plugins workflows use.
pub struct ServiceConfig {
    pub engine: Engine,
    /// The plugins of workflows from `workflows_dir` (the operator's own files).
    pub registry: Registry,
    /// The plugins of workflow text submitted over the API: the same, but its loaders
    /// may only reach the plugin directories (no `uses: wasm:/any/path`).
    pub submitted_registry: Registry,
    /// Where named workflows are found (`NAME.yaml` / `NAME.yml`).
    pub workflows_dir: Option<PathBuf>,
    /// What `/health` reports about the plugin processes.
    pub plugin_health: Arc<dyn Fn() -> serde_json::Value + Send + Sync>,
    /// Whether [`serve_on`] fires the workflows' `schedule:` entries (a pass a second).
    pub run_schedules: bool,
}

struct Inner {
    config: ServiceConfig,
    catalog: Arc<workflows::Catalog>,
    cursors: schedules::Cursors,
    metrics: metrics::Metrics,
    live: live::LiveRuns,
    /// The tasks driving runs, waited for at shutdown.
    tracker: TaskTracker,
    /// Cancelled at shutdown: the scheduling loop stops.
    stop: CancellationToken,
    /// Cancelled when the shutdown grace period is over: the runs still going are left
    /// as they are in the store (running, their heartbeat going stale) for the next
    /// `serve` to resume, as after a crash.
    abandon: CancellationToken,
    openapi: utoipa::openapi::OpenApi,
}

/// The running service's state, shared by every request.
#[derive(Clone)]
pub struct Service(Arc<Inner>);

impl Service {
    pub fn new(config: ServiceConfig) -> Service {
        let catalog = Arc::new(workflows::Catalog::new(
            config.workflows_dir.clone(),
            config.registry.clone(),
        ));
        Service(Arc::new(Inner {
            config,
            catalog,
            cursors: schedules::Cursors::default(),
            metrics: metrics::Metrics::default(),
            live: live::LiveRuns::default(),
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
            abandon: CancellationToken::new(),
            openapi: openapi(),
        }))
    }

    pub fn engine(&self) -> &Engine {
        &self.0.config.engine
    }

    pub fn store(&self) -> &Store {
        self.0.config.engine.store()
    }

    pub fn artifacts(&self) -> &ArtifactStore {
        self.0.config.engine.artifacts()
    }

    fn metrics(&self) -> &metrics::Metrics {
        &self.0.metrics
    }

    fn catalog(&self) -> &Arc<workflows::Catalog> {
        &self.0.catalog
    }

    fn config(&self) -> &ServiceConfig {
        &self.0.config
    }

    fn live(&self) -> &live::LiveRuns {
        &self.0.live
    }

    /// Runs `drive` for run `run_id` on a task of its own, registered as live until it
    /// ends; `Err(conflict)` if this process drives that run already.
    fn spawn_run<F, Fut>(&self, run_id: String, plan: &Plan, drive: F) -> Result<(), ApiError>
    where
        F: FnOnce(mediaflow_engine::RunControl) -> Fut + Send + 'static,
        Fut: std::future::Future<
                Output = Result<mediaflow_engine::RunReport, mediaflow_engine::EngineError>,
            > + Send
            + 'static,
    {
        let observe = self.observer(&run_id, plan);
        let Some((ctl, forward)) = self.live().start(&run_id, observe) else {
            return Err(ApiError::conflict(format!(
                "run {run_id} is running here already"
            )));
        };
        self.metrics().run_started(&run_id, plan.steps.len());
        let service = self.clone();
        let abandon = self.0.abandon.clone();
        self.0.tracker.spawn(async move {
            let result = tokio::select! {
                r = drive(ctl) => r,
                _ = abandon.cancelled() => {
                    eprintln!("mediaflow serve: run {run_id} left for the next serve to resume");
                    return;
                }
            };
            let status = match result {
                Ok(report) => report.status.as_str().to_owned(),
                Err(e) => {
                    eprintln!("mediaflow serve: run {run_id} stopped: {e}");
                    match service.store().get_run(&run_id).await {
                        Ok(r) => r.status.as_str().to_owned(),
                        Err(_) => "unknown".to_owned(),
                    }
                }
            };
            service.live().finish(&run_id, &status, forward).await;
            service.metrics().run_ended(&run_id);
        });
        Ok(())
    }

    /// What the metrics learn from a run's events.
    fn observer(&self, run_id: &str, plan: &Plan) -> Box<dyn Fn(&Event) + Send + Sync> {
        let plugins: HashMap<String, String> = plan
            .steps
            .iter()
            .map(|s| (s.id.clone(), s.plugin.descriptor().name.clone()))
            .collect();
        let service = self.clone();
        let run_id = run_id.to_owned();
        let started: std::sync::Mutex<HashSet<(String, Option<usize>)>> = Default::default();
        Box::new(move |e: &Event| match e {
            Event::StepStarted { step, item, .. } => {
                if let Ok(mut s) = started.lock() {
                    s.insert((step.clone(), *item));
                }
                service.metrics().step_started(&run_id, step);
            }
            Event::StepFinished {
                step,
                item,
                duration_ms,
                ..
            } => {
                let here = started
                    .lock()
                    .map(|mut s| s.remove(&(step.clone(), *item)))
                    .unwrap_or(false);
                let plugin = plugins.get(step).map(String::as_str).unwrap_or("unknown");
                service.metrics().step_finished(plugin, *duration_ms, here);
            }
            _ => {}
        })
    }

    /// Tells run `run_id` to stop, if this service drives it; `false` if it does not.
    pub fn cancel(&self, run_id: &str) -> bool {
        self.live().cancel(run_id)
    }

    /// Lets the runs driven here finish for up to `grace`; the ones still going are then
    /// left in the store as they are, for the next `serve` to resume
    /// ([`Service::resume_abandoned`]): finished steps are not run again.
    pub async fn shutdown(&self, grace: std::time::Duration) {
        self.0.stop.cancel();
        self.0.tracker.close();
        if tokio::time::timeout(grace, self.0.tracker.wait())
            .await
            .is_err()
        {
            self.0.abandon.cancel();
            self.0.tracker.wait().await;
        }
    }

    /// Resumes the service runs no live process drives any more: left by a `serve` that
    /// stopped (or crashed) in the middle of them. Returns what it did, for the log.
    /// At `startup`, runs still owned by this very worker id are taken too: a restarted
    /// container's serve often gets the pid (and host name) its predecessor had.
    pub async fn resume_abandoned(&self, startup: bool) -> Vec<String> {
        let mut log = Vec::new();
        let filter = mediaflow_store::RunFilter {
            status: Some(mediaflow_store::RunStatus::Running),
            limit: Some(10_000),
            ..Default::default()
        };
        let runs = match self.store().list_runs(&filter).await {
            Ok(r) => r,
            Err(e) => return vec![format!("cannot look for runs to resume: {e}")],
        };
        for run in runs {
            let ours = startup && run.owner.as_deref() == Some(&self.engine().options().worker);
            if !(ours || self.engine().is_abandoned(&run)) || self.live().is_live(&run.id) {
                continue;
            }
            let id = run.id.clone();
            let started = async {
                let stored = self.engine().stored_workflow(&id).await?;
                // Only the service's own runs: workflows of its directory or sent to its
                // API. A `mediaflow run` that died is left for `mediaflow resume`.
                if !self.catalog().contains_file(&stored.file)
                    && stored.file != workflows::SUBMITTED
                {
                    return Ok(false);
                }
                let plan = Arc::new(workflows::compile_stored(self, &stored).await?);
                let engine = self.engine().clone();
                let run_id = id.clone();
                self.spawn_run(id.clone(), &plan.clone(), move |ctl| async move {
                    engine.resume(&run_id, plan, ctl).await
                })?;
                Ok::<bool, ApiError>(true)
            };
            match started.await {
                Ok(false) => {}
                Ok(true) => log.push(format!("resuming run {id} (its process is gone)")),
                Err(e) => log.push(format!("cannot resume run {id}: {}", e.body.error.message)),
            }
        }
        log
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mediaflow",
        description = "Run YAML workflows of media and AI steps: submit runs, follow them, fetch their results and artifacts."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "runs", description = "Start, list, follow, cancel and re-run runs"),
        (name = "catalog", description = "Workflows, plugins and artifacts"),
        (name = "service", description = "Health and the API description")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The routes that need a token, with their OpenAPI description.
fn api_routes() -> OpenApiRouter<Service> {
    OpenApiRouter::new()
        .routes(routes!(runs::create_run, runs::list_runs))
        .routes(routes!(runs::get_run))
        .routes(routes!(runs::run_logs))
        .routes(routes!(runs::run_events))
        .routes(routes!(runs::cancel_run))
        .routes(routes!(runs::rerun))
        .routes(routes!(misc::artifact))
        .routes(routes!(workflows::list_workflows))
        .routes(routes!(misc::list_plugins))
        .routes(routes!(misc::openapi_json))
}

/// Everything that needs a token: the API and `/metrics`.
fn authed_routes() -> OpenApiRouter<Service> {
    OpenApiRouter::new()
        .nest("/api/v1", api_routes())
        .routes(routes!(metrics::metrics))
}

fn public_routes() -> OpenApiRouter<Service> {
    OpenApiRouter::new().routes(routes!(misc::health))
}

/// The OpenAPI 3 document of every route, as `/api/v1/openapi.json` serves it. It is
/// generated from the handlers' annotations, so it lists exactly the routes served.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, api) = OpenApiRouter::<Service>::with_openapi(ApiDoc::openapi())
        .merge(authed_routes())
        .merge(public_routes())
        .split_for_parts();
    api
}

/// The whole HTTP application.
pub fn router(service: Service) -> Router {
    let (authed, _) = authed_routes().split_for_parts();
    let authed = authed.layer(axum::middleware::from_fn_with_state(
        service.clone(),
        auth::require_token,
    ));
    let (public, _) = public_routes().split_for_parts();
    authed
        .merge(public)
        .merge(web::routes(service.clone()))
        .with_state(service)
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server stopped: {0}")]
    Server(#[source] std::io::Error),
}

/// Serves `service` on `listener` until `shutdown` completes; then stops taking requests
/// and gives the runs driven here `grace` to finish before telling them to stop.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    service: Service,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: std::time::Duration,
) -> Result<(), ServeError> {
    for line in service.resume_abandoned(true).await {
        eprintln!("mediaflow serve: {line}");
    }
    let app = router(service.clone());
    let ticker = service.config().run_schedules.then(|| {
        let service = service.clone();
        tokio::spawn(async move {
            for pass in 0u64.. {
                for line in service.schedule_pass(chrono::Utc::now()).await {
                    eprintln!("mediaflow serve: {line}");
                }
                // Every 30 s: runs whose process died meanwhile (another host's serve,
                // say) are resumed here.
                if pass % 30 == 29 {
                    for line in service.resume_abandoned(false).await {
                        eprintln!("mediaflow serve: {line}");
                    }
                }
                tokio::select! {
                    _ = service.0.stop.cancelled() => break,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                }
            }
        })
    });
    // When the shutdown signal comes, the scheduler stops and the event streams end (an
    // open stream would otherwise hold the graceful shutdown for as long as its run).
    let stop = service.0.stop.clone();
    let shutdown = async move {
        shutdown.await;
        stop.cancel();
    };
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Server);
    if let Some(t) = ticker {
        t.abort();
    }
    service.shutdown(grace).await;
    result
}

/// Binds `addr` (`127.0.0.1:0` picks a free port) and returns the listener and its address.
pub async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    Ok((listener, local))
}

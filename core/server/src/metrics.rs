//! `/metrics` in the Prometheus text format: runs by workflow and status (from the store),
//! and from this process: step durations by plugin, steps running and waiting, plugin
//! process restarts.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::problem::{ApiError, ErrorBody};
use crate::Service;

/// Upper bounds (seconds) of the step duration histogram's buckets.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct State_ {
    /// By plugin name.
    durations: BTreeMap<String, Histogram>,
    running: i64,
    /// Per live run: its steps and which of them have started.
    pending: HashMap<String, (usize, std::collections::HashSet<String>)>,
}

/// What this process counts as runs go.
#[derive(Default)]
pub struct Metrics(Mutex<State_>);

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, State_> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A run with `steps` steps starts being driven here.
    pub fn run_started(&self, run_id: &str, steps: usize) {
        self.lock()
            .pending
            .insert(run_id.to_owned(), (steps, Default::default()));
    }

    pub fn run_ended(&self, run_id: &str) {
        self.lock().pending.remove(run_id);
    }

    pub fn step_started(&self, run_id: &str, step: &str) {
        let mut s = self.lock();
        s.running += 1;
        if let Some((_, started)) = s.pending.get_mut(run_id) {
            started.insert(step.to_owned());
        }
    }

    pub fn step_finished(&self, plugin: &str, duration_ms: i64, started_here: bool) {
        let mut s = self.lock();
        if started_here {
            s.running = (s.running - 1).max(0);
        }
        let secs = duration_ms.max(0) as f64 / 1000.0;
        let h = s.durations.entry(plugin.to_owned()).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[utoipa::path(
    get, path = "/metrics", tag = "service",
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4", body = String),
        (status = 401, description = "No valid token", body = ErrorBody),
    )
)]
pub async fn metrics(State(service): State<Service>) -> Result<impl IntoResponse, ApiError> {
    let mut out = String::new();
    let counts = service.store().run_counts().await?;
    out.push_str("# HELP mediaflow_runs Runs in the store by workflow and status.\n# TYPE mediaflow_runs gauge\n");
    for (workflow, status, n) in counts {
        let _ = writeln!(
            out,
            "mediaflow_runs{{workflow=\"{}\",status=\"{}\"}} {n}",
            label(&workflow),
            label(&status)
        );
    }
    {
        let s = service.metrics().lock();
        out.push_str("# HELP mediaflow_step_duration_seconds Step (and for_each item) durations by plugin, in this process.\n# TYPE mediaflow_step_duration_seconds histogram\n");
        for (plugin, h) in &s.durations {
            let p = label(plugin);
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "mediaflow_step_duration_seconds_bucket{{plugin=\"{p}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "mediaflow_step_duration_seconds_bucket{{plugin=\"{p}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "mediaflow_step_duration_seconds_sum{{plugin=\"{p}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "mediaflow_step_duration_seconds_count{{plugin=\"{p}\"}} {}",
                h.count
            );
        }
        let waiting: usize = s
            .pending
            .values()
            .map(|(n, started)| n.saturating_sub(started.len()))
            .sum();
        let _ = write!(
            out,
            "# HELP mediaflow_steps_running Steps (and for_each items) running in this process.\n# TYPE mediaflow_steps_running gauge\nmediaflow_steps_running {}\n\
             # HELP mediaflow_steps_waiting Steps of the runs driven here that have not started yet.\n# TYPE mediaflow_steps_waiting gauge\nmediaflow_steps_waiting {waiting}\n\
             # HELP mediaflow_runs_in_progress Runs driven by this process.\n# TYPE mediaflow_runs_in_progress gauge\nmediaflow_runs_in_progress {}\n",
            s.running,
            s.pending.len()
        );
    }
    let health = (service.config().plugin_health)();
    out.push_str("# HELP mediaflow_plugin_process_restarts_total Times a plugin process was started again after its first start.\n# TYPE mediaflow_plugin_process_restarts_total counter\n");
    for p in health["processes"].as_array().into_iter().flatten() {
        let starts = p["starts"].as_u64().unwrap_or(0);
        let _ = writeln!(
            out,
            "mediaflow_plugin_process_restarts_total{{process=\"{}\"}} {}",
            label(p["name"].as_str().unwrap_or("")),
            starts.saturating_sub(1)
        );
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    ))
}

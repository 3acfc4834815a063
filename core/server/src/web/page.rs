//! What the pages show, read from the store.

use mediaflow_store::{RunFilter, RunStatus};
use minijinja::context;
use serde_json::{json, Value};

use crate::problem::ApiError;
use crate::{workflows, Service};

fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn duration(ms: i64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 120_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// The runs list: newest first, 50 a page, filtered.
pub async fn runs(
    service: &Service,
    workflow: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
) -> Result<minijinja::Value, ApiError> {
    let workflow = workflow.filter(|w| !w.is_empty());
    let status = status.filter(|s| !s.is_empty());
    let before = cursor.as_deref().and_then(|c| {
        let (t, id) = c.split_once('.')?;
        Some((t.parse().ok()?, id.to_owned()))
    });
    let limit = 50;
    let mut runs = service
        .store()
        .list_runs(&RunFilter {
            workflow: workflow.clone(),
            status: status.as_deref().and_then(RunStatus::parse),
            limit: Some(limit + 1),
            before,
            ..Default::default()
        })
        .await?;
    let more = runs.len() as i64 > limit;
    runs.truncate(limit as usize);
    let now = mediaflow_store::now_ms();
    let rows: Vec<Value> = runs
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "workflow": r.workflow_name,
                "status": r.status.as_str(),
                "started": when(r.created_at),
                "duration": duration(r.finished_at.unwrap_or(now) - r.created_at),
            })
        })
        .collect();
    let next = more.then(|| runs.last()).flatten().map(|r| {
        let mut q = format!("cursor={}.{}", r.created_at, r.id);
        if let Some(w) = &workflow {
            q.push_str(&format!("&workflow={}", urlencode(w)));
        }
        if let Some(s) = &status {
            q.push_str(&format!("&status={}", urlencode(s)));
        }
        q
    });
    Ok(context! {
        signed_in => true,
        runs => rows,
        workflow => workflow,
        status => status,
        next => next,
    })
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One run: its DAG, timeline, and each step's inputs, outputs, error, logs and artifacts.
pub async fn run(service: &Service, id: &str) -> Result<minijinja::Value, ApiError> {
    let report = service.engine().report(id).await?;
    let logs = service.store().logs(id).await?;
    // The plan gives the graph's edges, each step's plugin and `with:`. A workflow that no
    // longer compiles still gets its page, from the step records alone.
    let plan = match service.engine().stored_workflow(id).await {
        Ok(stored) => workflows::compile_stored(service, &stored).await.ok(),
        Err(_) => None,
    };
    let status_of = |step: &str| {
        report
            .steps
            .get(step)
            .map(|s| s.status.as_str().to_owned())
            .unwrap_or_else(|| "pending".to_owned())
    };
    let mut order: Vec<(String, String, String, Vec<usize>, Value)> = match &plan {
        Some(p) => p
            .steps
            .iter()
            .map(|s| {
                (
                    s.id.clone(),
                    s.plugin.descriptor().name.clone(),
                    status_of(&s.id),
                    s.deps.clone(),
                    s.with.clone(),
                )
            })
            .collect(),
        None => Vec::new(),
    };
    for name in report.steps.keys() {
        if !order.iter().any(|o| &o.0 == name) {
            order.push((
                name.clone(),
                String::new(),
                status_of(name),
                Vec::new(),
                Value::Null,
            ));
        }
    }
    let dag = super::dag::layout(
        &order
            .iter()
            .map(|(a, b, c, d, _)| (a.clone(), b.clone(), c.clone(), d.clone()))
            .collect::<Vec<_>>(),
    );
    let now = mediaflow_store::now_ms();
    let end = report.finished_at.unwrap_or(now);
    let total = (end - report.created_at).max(1) as f64;
    let mut timeline = Vec::new();
    let mut steps = Vec::new();
    for (name, plugin, status, _, with) in &order {
        let rec = report.steps.get(name);
        if let Some((start, ms)) =
            rec.and_then(|r| Some((r.started_at?, r.duration_ms.unwrap_or(now - r.started_at?))))
        {
            timeline.push(json!({
                "step": name,
                "status": status,
                "left": format!("{:.2}", ((start - report.created_at).max(0) as f64 / total * 100.0).min(100.0)),
                "width": format!("{:.2}", (ms.max(0) as f64 / total * 100.0).clamp(0.2, 100.0)),
                "duration": duration(ms),
            }));
        }
        let mut found = Vec::new();
        if let Some(r) = rec {
            super::artifacts(&r.outputs, &mut found);
        }
        let lines: Vec<String> = logs
            .iter()
            .filter(|l| &l.step_id == name)
            .map(|l| {
                let item = l.item_index.map(|i| format!("[{i}] ")).unwrap_or_default();
                format!("{} {:5} {item}{}", when(l.ts), l.level, l.message)
            })
            .collect();
        steps.push(json!({
            "id": name,
            "plugin": plugin,
            "status": status,
            "attempts": rec.map(|r| r.attempts).unwrap_or(0),
            "duration": rec.and_then(|r| r.duration_ms).map(duration),
            "with": (!with.is_null()).then(|| pretty(with)),
            "outputs": rec.filter(|r| !r.outputs.is_null()).map(|r| pretty(&r.outputs)),
            "error": rec.and_then(|r| r.error.as_ref()).map(pretty),
            "artifacts": found,
            "logs": lines,
        }));
    }
    let live = service.live().is_live(id) || report.status == RunStatus::Running;
    Ok(context! {
        signed_in => true,
        run => json!({
            "id": report.run_id,
            "workflow": report.workflow,
            "status": report.status.as_str(),
            "started": when(report.created_at),
            "duration": duration(end - report.created_at),
            "resumed": report.resumed_count,
            "error": report.error.as_ref().map(pretty),
        }),
        dag => dag,
        timeline => timeline,
        steps => steps,
        live => live,
    })
}

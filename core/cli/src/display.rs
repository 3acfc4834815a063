//! What the CLI shows: live progress, run summaries, run lists, plugin listings.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use mediaflow_engine::{Event, RunReport};
use mediaflow_store::{LogRecord, RunRecord, StepStatus};
use mediaflow_workflow::clean;
use miette::miette;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;

pub fn color_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn label(step: &str, item: Option<usize>) -> String {
    match item {
        Some(i) => format!("{step}[{i}]"),
        None => step.to_owned(),
    }
}

fn mark(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Succeeded => "✔",
        StepStatus::Cached => "↺",
        StepStatus::Skipped => "↷",
        StepStatus::Failed => "✘",
        StepStatus::Cancelled => "■",
        StepStatus::Running => "…",
    }
}

/// Shows events as they come: spinners on a terminal, plain lines otherwise (CI, pipes).
pub async fn follow(mut rx: UnboundedReceiver<Event>, _json: bool) {
    let tty = std::io::stderr().is_terminal();
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    let mut shown = std::collections::HashSet::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::StepStarted {
                step,
                item,
                attempt,
            } => {
                let name = label(&step, item);
                if tty {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(style.clone());
                    bar.set_prefix(name.clone());
                    if attempt > 1 {
                        bar.set_message(format!("attempt {attempt}"));
                    }
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bars.insert(name, bar);
                } else {
                    let extra = if attempt > 1 {
                        format!(" (attempt {attempt})")
                    } else {
                        String::new()
                    };
                    eprintln!("{name}: running{extra}");
                }
            }
            Event::StepProgress {
                step,
                item,
                fraction,
                message,
            } => {
                let name = label(&step, item);
                let text = format!("{:>3.0}% {}", fraction * 100.0, message.unwrap_or_default());
                match bars.get(&name) {
                    Some(bar) => bar.set_message(text),
                    // Plain output: a line per quarter, not per update.
                    None if !tty => {
                        let quarter = (fraction * 4.0) as u8;
                        if shown.insert((name.clone(), quarter)) && quarter > 0 {
                            eprintln!("{name}: {text}");
                        }
                    }
                    None => {}
                }
            }
            Event::StepLog {
                step,
                item,
                level,
                message,
            } => {
                let line = format!(
                    "{}: [{}] {}",
                    label(&step, item),
                    level.as_str(),
                    clean(&message)
                );
                if tty {
                    let _ = multi.println(line);
                } else {
                    eprintln!("{line}");
                }
            }
            Event::StepRetrying {
                step,
                item,
                attempt,
                delay_ms,
                error,
            } => {
                let line = format!(
                    "{}: attempt {attempt} failed ({}); retrying in {delay_ms} ms",
                    label(&step, item),
                    clean(&error)
                );
                if tty {
                    let _ = multi.println(line);
                } else {
                    eprintln!("{line}");
                }
            }
            Event::StepFinished {
                step,
                item,
                status,
                duration_ms,
                error,
            } => {
                let name = label(&step, item);
                let why = error
                    .map(|e| format!(": {}", clean(&e)))
                    .unwrap_or_default();
                let line = format!("{} {name}: {status} in {duration_ms} ms{why}", mark(status));
                if let Some(bar) = bars.remove(&name) {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
                if tty {
                    let _ = multi.println(line);
                } else {
                    eprintln!("{line}");
                }
            }
        }
    }
}

fn short(v: &Value, max: usize) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let one_line = clean(&s).replace('\n', " ⏎ ");
    if one_line.chars().count() > max {
        format!("{}…", one_line.chars().take(max).collect::<String>())
    } else {
        one_line
    }
}

pub fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "?".to_owned())
}

/// ` on WORKER` (or ` on N workers` for items run on several) in a distributed run.
fn ran_on(s: &mediaflow_engine::StepReport) -> String {
    let mut workers: Vec<&str> = s
        .worker
        .iter()
        .chain(s.items.iter().filter_map(|i| i.worker.as_ref()))
        .map(String::as_str)
        .collect();
    workers.sort_unstable();
    workers.dedup();
    match workers.as_slice() {
        [] => String::new(),
        [one] => format!(" on {one}"),
        many => format!(" on {} workers ({})", many.len(), many.join(", ")),
    }
}

pub fn print_report(r: &RunReport) {
    let took = r
        .finished_at
        .map(|f| format!(" in {:.2}s", (f - r.created_at) as f64 / 1000.0))
        .unwrap_or_default();
    println!("run {} ({}) {}{took}", r.run_id, r.workflow, r.status);
    let width = r.steps.keys().map(|k| k.len()).max().unwrap_or(4);
    let mut steps: Vec<_> = r.steps.iter().collect();
    steps.sort_by_key(|(_, s)| s.started_at.unwrap_or(i64::MAX));
    for (id, s) in steps {
        let items = if s.items.is_empty() {
            String::new()
        } else {
            format!(" {} items", s.items.len())
        };
        let dur = s
            .duration_ms
            .map(|d| format!(" {d} ms"))
            .unwrap_or_default();
        let tries = if s.attempts > 1 {
            format!(" {} attempts", s.attempts)
        } else {
            String::new()
        };
        println!(
            "  {} {id:<width$} {}{items}{tries}{dur}{}",
            mark(s.status),
            s.status,
            ran_on(s)
        );
        if let Some(msg) = s
            .error
            .as_ref()
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
        {
            if s.status == StepStatus::Failed {
                println!("      {}", clean(msg));
                if let Some(h) = s
                    .error
                    .as_ref()
                    .and_then(|e| e.get("help"))
                    .and_then(Value::as_str)
                {
                    println!("      help: {}", clean(h));
                }
            }
        }
    }
    if let Some(Value::Object(outputs)) = Some(&r.outputs) {
        if !outputs.is_empty() {
            println!("outputs:");
            for (k, v) in outputs {
                println!("  {k}: {}", short(v, 300));
            }
        }
    }
    if let Some(msg) = r
        .error
        .as_ref()
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
    {
        println!("error: {}", clean(msg));
    }
}

pub fn print_logs(logs: &[LogRecord]) {
    if logs.is_empty() {
        return;
    }
    println!("logs:");
    for l in logs {
        println!(
            "  {} {}: [{}] {}",
            when(l.ts),
            label(&l.step_id, l.item_index),
            l.level,
            clean(&l.message)
        );
    }
}

pub fn print_runs(runs: &[RunRecord], json: bool) {
    if json {
        let v = serde_json::to_value(runs).unwrap_or(Value::Null);
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return;
    }
    if runs.is_empty() {
        println!("no runs yet");
        return;
    }
    println!(
        "{:<36}  {:<20}  {:<9}  {:<19}  DURATION",
        "RUN", "WORKFLOW", "STATUS", "STARTED"
    );
    for r in runs {
        let dur = r
            .finished_at
            .map(|f| format!("{:.2}s", (f - r.created_at) as f64 / 1000.0))
            .unwrap_or_else(|| "-".to_owned());
        println!(
            "{:<36}  {:<20}  {:<9}  {:<19}  {dur}",
            r.id,
            short(&Value::String(r.workflow_name.clone()), 20),
            r.status,
            when(r.created_at)
        );
    }
}

pub fn print_plugins(
    plugins: &crate::plugins::Plugins,
    name: Option<&str>,
    json: bool,
) -> Result<(), miette::Report> {
    let registry = &plugins.registry;
    let descs: Vec<_> = registry
        .descriptors()
        .filter(|d| name.is_none_or(|n| d.name == n))
        .collect();
    if descs.is_empty() {
        let n = name.unwrap_or("");
        let hint = mediaflow_workflow::suggest(n, registry.names())
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        return Err(miette!("no plugin `{n}`{hint}"));
    }
    let origin = |n: &str| registry.origin(n).unwrap_or_default().to_owned();
    if json {
        let v: Vec<Value> = descs.iter().map(|d| registry.descriptor_json(d)).collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    for d in descs {
        println!("{} {}  {}", d.name, d.version, d.description);
        println!("  from:    {}", origin(&d.name));
        let ports = |ps: &[mediaflow_plugin_api::Port]| {
            ps.iter()
                .map(|p| format!("{}: {}", p.name, p.ty))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !d.inputs.is_empty() {
            println!("  inputs:  {}", ports(&d.inputs));
        }
        println!("  outputs: {}", ports(&d.outputs));
        if d.sandboxed {
            let wants = if d.permissions.is_empty() {
                "nothing beyond log".to_owned()
            } else {
                let names: Vec<&str> = d.permissions.iter().map(|p| p.as_str()).collect();
                names.join(", ")
            };
            println!("  sandboxed (WebAssembly); may ask for: {wants}");
        }
        if name.is_some() {
            println!("  config schema:");
            let schema = serde_json::to_string_pretty(&d.config_schema).unwrap_or_default();
            for line in schema.lines() {
                println!("    {line}");
            }
        }
    }
    for b in &plugins.broken {
        eprintln!("warning: {b}");
    }
    Ok(())
}

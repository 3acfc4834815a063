//! `mediaflow worker` (claim and run the queued steps of distributed runs) and `mediaflow
//! workers` (who is alive, what each can run and is running).

use std::time::Duration;

use mediaflow_engine::{Worker, WorkerEvent, WorkerOptions};
use mediaflow_plugin_api::Plugin;
use mediaflow_store::{now_ms, ArtifactStore, Store, TaskRecord};
use miette::{miette, IntoDiagnostic};
use tokio_util::sync::CancellationToken;

use crate::plugins::Plugins;

#[derive(clap::Args)]
pub struct WorkerArgs {
    /// Most steps at once [default: the number of cores]
    #[arg(long, value_name = "N")]
    concurrency: Option<usize>,
    /// What this worker offers besides its plugins and models, for steps that ask for it
    /// (`asr,gpu`)
    #[arg(long, value_delimiter = ',', value_name = "TAG,…")]
    tags: Vec<String>,
    /// Only take steps of these plugins (`audio.*,llm.generate`) [default: every plugin
    /// this mediaflow has]
    #[arg(long, value_delimiter = ',', value_name = "PLUGIN,…")]
    plugins: Vec<String>,
    /// Its name in the queue and in step records [default: HOST:PID]
    #[arg(long)]
    name: Option<String>,
    /// How long a claimed step is held without a renewal (renewed every third of it); a
    /// worker silent for longer loses its steps to other workers
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    lease: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    mediaflow_plugin_api::parse_duration(s)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{s}` is not a duration (such as 30s, 2m)"))
}

/// How a coordinator queues steps: the model names that workers advertise (every catalog
/// and added model, installed here or not), so a step naming one goes to a worker that
/// has it.
pub fn dispatch_options(models_dir: &std::path::Path) -> mediaflow_engine::DispatchOptions {
    let models = mediaflow_models::ModelStore::open(models_dir.to_path_buf())
        .and_then(|m| m.list())
        .map(|l| l.into_iter().map(|m| m.name).collect())
        .unwrap_or_default();
    mediaflow_engine::DispatchOptions {
        models: std::sync::Arc::new(models),
        ..Default::default()
    }
}

/// Whether plugin `name` matches one of `patterns` (`audio.*`, `llm.generate`); no patterns
/// match everything.
fn wanted(name: &str, patterns: &[String]) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => p == name,
        })
}

pub async fn worker(
    args: &WorkerArgs,
    store: Store,
    artifacts: ArtifactStore,
    plugins: &Plugins,
    models_dir: &std::path::Path,
) -> miette::Result<()> {
    let chosen: Vec<std::sync::Arc<dyn Plugin>> = plugins
        .registry
        .names()
        .filter(|n| wanted(n, &args.plugins))
        .filter_map(|n| plugins.registry.get(n).cloned())
        .collect();
    if chosen.is_empty() {
        return Err(miette!(
            "no plugin matches --plugins {}: `mediaflow plugins` lists them",
            args.plugins.join(",")
        ));
    }
    let dir = models_dir.to_path_buf();
    let list_models = move || {
        mediaflow_models::ModelStore::open(dir.clone())
            .and_then(|m| m.list())
            .map(|l| {
                l.into_iter()
                    .filter(|m| m.installed)
                    .map(|m| m.name)
                    .collect::<Vec<_>>()
            })
    };
    let models = list_models().unwrap_or_else(|e| {
        eprintln!(
            "warning: cannot list the models in {}: {e}; offering none until they can be",
            models_dir.display()
        );
        Vec::new()
    });
    let mut options = WorkerOptions {
        tags: args.tags.clone(),
        models,
        list_models: Some(std::sync::Arc::new(move || list_models().ok())),
        lease: args.lease,
        ..WorkerOptions::default()
    };
    if let Some(n) = args.concurrency {
        options.concurrency = n.max(1);
    }
    if let Some(name) = &args.name {
        options.id = name.clone();
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let url = store.url().to_owned();
    let worker = Worker::new(store, artifacts, chosen, options, plugins.llm(), Some(tx));
    let info = worker.info();
    eprintln!(
        "worker {} on {url}: {} plugins, {} at once{}; Ctrl-C stops it after the steps it holds",
        info.id,
        info.plugins.len(),
        info.concurrency,
        if info.capabilities.is_empty() {
            String::new()
        } else {
            format!(", has {}", info.capabilities.join(", "))
        },
    );
    let stop = CancellationToken::new();
    let signals = stop.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminated => {}
        }
        eprintln!("stopping: finishing the steps this worker holds");
        signals.cancel();
    });
    let printer = tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            match e {
                WorkerEvent::Claimed(t) => {
                    eprintln!("{} claimed (attempt {})", name(&t), t.attempts)
                }
                WorkerEvent::Finished { task, state } => {
                    eprintln!("{} {}", name(&task), state.as_str())
                }
                WorkerEvent::Refused(t) => eprintln!(
                    "{}: result refused, the step was given to another worker after this one's \
                     lease ran out",
                    name(&t)
                ),
                WorkerEvent::Trouble(m) => eprintln!("warning: {m}"),
            }
        }
    });
    let done = worker.run(stop).await.map_err(|e| miette!("{e}"));
    drop(worker);
    let _ = printer.await;
    done
}

fn name(t: &TaskRecord) -> String {
    match t.item {
        Some(i) => format!("{} {}[{i}]", t.run_id, t.step_id),
        None => format!("{} {}", t.run_id, t.step_id),
    }
}

/// `mediaflow workers`: the workers heard from in the last 15 s.
pub async fn workers(store: &Store, json: bool) -> miette::Result<()> {
    let since = now_ms() - 15_000;
    let live = store
        .live_workers(since)
        .await
        .map_err(|e| miette!("{e}"))?;
    let running = store.running_tasks().await.map_err(|e| miette!("{e}"))?;
    if json {
        let list: Vec<serde_json::Value> = live
            .iter()
            .map(|w| {
                let mut v = serde_json::to_value(w).unwrap_or_default();
                v["tasks"] = serde_json::to_value(
                    running
                        .iter()
                        .filter(|t| t.worker == w.id)
                        .collect::<Vec<_>>(),
                )
                .unwrap_or_default();
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list).into_diagnostic()?);
        return Ok(());
    }
    if live.is_empty() {
        println!("no live workers (start one with `mediaflow worker --database-url …`)");
        return Ok(());
    }
    for w in &live {
        let age = (now_ms() - w.heartbeat_at).max(0) / 1000;
        println!(
            "{}  running {}/{}  heard from {age}s ago",
            w.id, w.running, w.concurrency
        );
        println!("  plugins: {}", w.plugins.join(", "));
        if !w.capabilities.is_empty() {
            println!("  has: {}", w.capabilities.join(", "));
        }
        for t in running.iter().filter(|t| t.worker == w.id) {
            let item = t.item.map(|i| format!("[{i}]")).unwrap_or_default();
            println!("  running: {} {}{item}", t.run_id, t.step_id);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::wanted;

    #[test]
    fn plugin_patterns() {
        let p = vec!["audio.*".to_owned(), "llm.generate".to_owned()];
        assert!(wanted("audio.transcribe", &p));
        assert!(wanted("llm.generate", &p));
        assert!(!wanted("llm.generate2", &p));
        assert!(!wanted("text.template", &p));
        assert!(wanted("anything", &[]));
    }
}

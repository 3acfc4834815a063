//! `mediaflow serve` and `mediaflow token`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use mediaflow_engine::{Engine, EngineOptions};
use mediaflow_server::{Scope, Service, ServiceConfig};
use mediaflow_store::Store;
use miette::{miette, IntoDiagnostic};

use crate::plugins::Plugins;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory of workflows that `POST /runs` may name (`NAME.yaml`)
    #[arg(long, value_name = "DIR")]
    pub workflows: Option<PathBuf>,
    /// The only directory `file.read` and `file.write` may reach in this service's runs
    /// [default: DATA_DIR/files]
    #[arg(long, value_name = "DIR")]
    pub files_root: Option<PathBuf>,
    /// How long running runs may go on after SIGTERM or Ctrl-C before they are stopped
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// Most steps running at once in each run
    #[arg(long, value_name = "N")]
    pub max_parallel: Option<usize>,
    /// Do not fire the workflows' `schedule:` entries here (another service does)
    #[arg(long)]
    pub no_schedules: bool,
    /// Hand every step of this service's runs to `mediaflow worker` processes through the
    /// database's work queue
    #[arg(long)]
    pub distributed: bool,
}

impl ServeArgs {
    /// The files root the service confines file steps to.
    pub fn files_root(&self, data_dir: &std::path::Path) -> PathBuf {
        self.files_root
            .clone()
            .unwrap_or_else(|| data_dir.join("files"))
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ScopeArg {
    /// Read runs, logs, artifacts, workflows and plugins
    Read,
    /// Also start, cancel and re-run runs
    Run,
    /// Everything
    Admin,
}

impl From<ScopeArg> for Scope {
    fn from(s: ScopeArg) -> Scope {
        match s {
            ScopeArg::Read => Scope::Read,
            ScopeArg::Run => Scope::Run,
            ScopeArg::Admin => Scope::Admin,
        }
    }
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Make a token for the API; it is printed once and only its hash is kept
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value = "run")]
        scope: ScopeArg,
    },
    /// List the tokens (never their secrets)
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id or name
    Revoke { which: String },
}

pub async fn token(store: &Store, command: &TokenCommand) -> miette::Result<()> {
    match command {
        TokenCommand::Create { name, scope } => {
            if name.trim().is_empty() {
                return Err(miette!("a token needs a name: --name cms"));
            }
            let made = mediaflow_server::create_token(store, name, (*scope).into())
                .await
                .map_err(|e| miette!("{e}"))?;
            eprintln!(
                "token `{}` (scope {}, id {}): copy it now, it is not shown again",
                made.record.name, made.record.scope, made.record.id
            );
            println!("{}", made.token);
            Ok(())
        }
        TokenCommand::List { json } => {
            let tokens = store.tokens().await.map_err(|e| miette!("{e}"))?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&tokens).into_diagnostic()?
                );
                return Ok(());
            }
            if tokens.is_empty() {
                println!("no tokens; make one with `mediaflow token create --name NAME`");
                return Ok(());
            }
            println!(
                "{:<16}  {:<20}  {:<5}  {:<19}  STATE",
                "ID", "NAME", "SCOPE", "CREATED"
            );
            for t in tokens {
                let state = match t.revoked_at {
                    Some(at) => format!("revoked {}", crate::display::when(at)),
                    None => match t.last_used_at {
                        Some(at) => format!("last used {}", crate::display::when(at)),
                        None => "never used".to_owned(),
                    },
                };
                println!(
                    "{:<16}  {:<20}  {:<5}  {:<19}  {state}",
                    t.id,
                    t.name,
                    t.scope,
                    crate::display::when(t.created_at)
                );
            }
            Ok(())
        }
        TokenCommand::Revoke { which } => {
            match store
                .revoke_token(which)
                .await
                .map_err(|e| miette!("{e}"))?
            {
                0 => Err(miette!("no live token with id or name `{which}`")),
                n => {
                    println!("revoked {n} token{}", if n == 1 { "" } else { "s" });
                    Ok(())
                }
            }
        }
    }
}

/// Resolves once SIGTERM or Ctrl-C arrives.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    eprintln!("mediaflow serve: stopping; runs in progress may finish within the grace period");
}

pub async fn serve(
    args: &ServeArgs,
    store: Store,
    artifacts: mediaflow_store::ArtifactStore,
    plugins: &Plugins,
    models_dir: &std::path::Path,
) -> miette::Result<()> {
    let mut options = EngineOptions::default();
    if let Some(n) = args.max_parallel {
        options.max_parallel = n.max(1);
    }
    if args.distributed {
        options.distributed = Some(crate::worker::dispatch_options(models_dir));
        eprintln!("mediaflow serve: distributed: steps go to `mediaflow worker` processes");
    }
    let engine = Engine::new(store, artifacts, options).with_llm(plugins.llm());
    let config = ServiceConfig {
        engine,
        registry: plugins.registry.clone(),
        submitted_registry: plugins.confined_registry(),
        workflows_dir: args
            .workflows
            .as_ref()
            .map(|d| d.canonicalize().unwrap_or_else(|_| d.clone())),
        plugin_health: plugins.health(),
        run_schedules: !args.no_schedules,
    };
    let (listener, addr) = mediaflow_server::bind(args.listen)
        .await
        .map_err(|e| miette!("{e}"))?;
    eprintln!("mediaflow serve: listening on http://{addr} (API under /api/v1, health at /health)");
    mediaflow_server::serve_on(
        listener,
        Service::new(config),
        shutdown_signal(),
        args.grace,
    )
    .await
    .map_err(|e| miette!("{e}"))
}

/// `mediaflow schedules`: every scheduled workflow in `dir` with its next fire times.
pub fn schedules(dir: &std::path::Path, plugins: &Plugins, json: bool) -> miette::Result<()> {
    let catalog = mediaflow_server::Catalog::new(Some(dir.to_owned()), plugins.registry.clone());
    for line in catalog.refresh() {
        if line.contains("does not compile") {
            eprintln!("warning: {line}");
        }
    }
    let now = chrono::Utc::now();
    let rows: Vec<serde_json::Value> = catalog
        .scheduled()
        .iter()
        .flat_map(|(name, plan)| {
            plan.schedules.iter().map(move |s| {
                let mut v = mediaflow_server::schedule_json(s, now, 5);
                v["workflow"] = serde_json::Value::String(name.clone());
                v
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).into_diagnostic()?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no workflow in {} has a `schedule:`", dir.display());
        return Ok(());
    }
    for r in rows {
        println!(
            "{} #{}  {}  ({}, catch_up {}, concurrency {})",
            r["workflow"].as_str().unwrap_or(""),
            r["index"],
            r["cron"].as_str().unwrap_or(""),
            r["timezone"].as_str().unwrap_or(""),
            r["catch_up"].as_str().unwrap_or(""),
            r["concurrency"].as_str().unwrap_or(""),
        );
        for t in r["next"].as_array().into_iter().flatten() {
            println!("    {}", t.as_str().unwrap_or(""));
        }
    }
    Ok(())
}

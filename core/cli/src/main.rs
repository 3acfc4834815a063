//! `mediaflow`: run YAML workflows of media and AI steps.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use mediaflow_engine::{Engine, EngineOptions, RunControl, RunReport};
use mediaflow_plugin_api::Registry;
use mediaflow_store::{ArtifactStore, RunFilter, RunStatus, Store};
use mediaflow_workflow::{compile_file, compile_str, CompileError, Diagnostics, Plan};
use miette::{miette, IntoDiagnostic};

mod display;
mod inputs;
mod models;
mod plugins;
mod recommend;
mod scaffold;
mod serve;
mod train;
mod worker;

#[derive(Parser)]
#[command(
    name = "mediaflow",
    version,
    about = "Run YAML workflows of media and AI steps"
)]
struct Cli {
    /// Where the database and artifacts live [default: the platform data dir]
    #[arg(long, env = "MEDIAFLOW_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Use this database instead of the SQLite file in the data dir (sqlite://… or postgres://…)
    #[arg(
        long,
        env = "MEDIAFLOW_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a workflow file and report every problem in it
    Validate { file: PathBuf },
    /// Run a workflow
    Run {
        file: PathBuf,
        /// An input: `name=value` (JSON if it parses, else a string), `name=@file.json|yaml`,
        /// or `name=@path` for a `file` input
        #[arg(short, long = "input", value_name = "NAME=VALUE")]
        inputs: Vec<String>,
        /// Print the result as one JSON object
        #[arg(long)]
        json: bool,
        /// Run every step even if a cached result exists
        #[arg(long)]
        no_cache: bool,
        /// Most steps running at once
        #[arg(long, value_name = "N")]
        max_parallel: Option<usize>,
        /// Finish the latest interrupted or failed run of this workflow with the same inputs
        /// instead of starting a new one
        #[arg(long)]
        resume: bool,
        /// Hand every step to `mediaflow worker` processes through the database's work queue
        /// instead of running it here (use a PostgreSQL --database-url to reach other machines)
        #[arg(long)]
        distributed: bool,
    },
    /// Finish an interrupted, failed or cancelled run; finished steps are not run again
    Resume {
        run_id: String,
        #[arg(long)]
        json: bool,
    },
    /// List runs, newest first
    Runs {
        #[arg(long)]
        workflow: Option<String>,
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Show one run: steps, outputs, errors and logs
    Show {
        run_id: String,
        #[arg(long)]
        json: bool,
    },
    /// List the plugins, or show one with its config schema
    Plugins {
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Write WebAssembly plugins: `plugin new NAME`, `plugin build [DIR]`
    Plugin {
        #[command(subcommand)]
        command: scaffold::PluginCommand,
    },
    /// Print the JSON Schema of the workflow format (for editors)
    Schema,
    /// Manage models: list, pull, add, verify, rm
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
    /// Train models on your own data: `train classifier` (a text classifier head)
    Train {
        #[command(subcommand)]
        command: train::TrainCommand,
    },
    /// Run step STEP of a finished run again, and every step after it that depends on it;
    /// the other steps keep their results
    Rerun {
        run_id: String,
        #[arg(long, value_name = "STEP")]
        from: String,
        #[arg(long)]
        json: bool,
    },
    /// Run as a service: the REST API under /api/v1 (see `mediaflow token`)
    Serve(serve::ServeArgs),
    /// List the scheduled workflows of a directory with their next five fire times
    Schedules {
        /// The workflows directory `serve --workflows` uses
        #[arg(long, value_name = "DIR", default_value = "workflows")]
        workflows: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Manage the service's API tokens: create, list, revoke
    Token {
        #[command(subcommand)]
        command: serve::TokenCommand,
    },
    /// Take and run the steps of distributed runs (`run --distributed`) from the database's
    /// work queue
    Worker(worker::WorkerArgs),
    /// List the live workers: what each can run and what it is running
    Workers {
        #[arg(long)]
        json: bool,
    },
    /// Reading events for the recommender: import, generate an example, show recommendations
    Events {
        #[command(subcommand)]
        command: recommend::EventsCommand,
    },
    /// Offline evaluation: `eval recommend` compares the recommender's models
    Eval {
        #[command(subcommand)]
        command: recommend::EvalCommand,
    },
}

/// A run status, as `runs --status` takes it.
#[derive(Clone, Copy, ValueEnum)]
enum StatusArg {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl From<StatusArg> for RunStatus {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Running => RunStatus::Running,
            StatusArg::Succeeded => RunStatus::Succeeded,
            StatusArg::Failed => RunStatus::Failed,
            StatusArg::Cancelled => RunStatus::Cancelled,
        }
    }
}

/// An error with the exit code it maps to: 1 failed or invalid, 2 usage.
struct Failure {
    code: u8,
    report: miette::Report,
}

impl From<miette::Report> for Failure {
    fn from(report: miette::Report) -> Self {
        Failure { code: 1, report }
    }
}

fn usage(report: miette::Report) -> Failure {
    Failure { code: 2, report }
}

fn data_dir(cli: &Cli) -> Result<PathBuf, Failure> {
    if let Some(d) = &cli.data_dir {
        return Ok(d.clone());
    }
    mediaflow_models::default_data_dir().ok_or_else(|| {
        usage(miette!(
            "cannot find a data directory; pass --data-dir or set MEDIAFLOW_DATA_DIR"
        ))
    })
}

async fn open_store(cli: &Cli) -> Result<(Store, ArtifactStore), Failure> {
    let dir = data_dir(cli)?;
    let store = match &cli.database_url {
        Some(url) => Store::connect(url).await,
        None => Store::open_sqlite(&dir.join("mediaflow.db")).await,
    }
    .map_err(|e| miette!("{e}"))?;
    let artifacts = ArtifactStore::new(dir.join("artifacts"), store.clone());
    Ok((store, artifacts))
}

fn invalid(d: Diagnostics) -> Failure {
    eprint!("{}", d.render(display::color_stderr()));
    Failure {
        code: 1,
        report: miette!("{d}"),
    }
}

fn compile(file: &std::path::Path, registry: &Registry) -> Result<Plan, Failure> {
    compile_file(file, registry).map_err(|e| match e {
        CompileError::Invalid(d) => invalid(d),
        CompileError::Io { .. } => usage(miette!("{e}")),
        other => miette!("{other}").into(),
    })
}

/// A stored run's workflow, compiled against today's plugins (to resume or re-run it).
async fn stored_plan(
    engine: &Engine,
    registry: &Registry,
    run_id: &str,
) -> Result<Arc<Plan>, Failure> {
    let stored = engine
        .stored_workflow(run_id)
        .await
        .map_err(|e| miette!("{e}"))?;
    let plan = compile_str(&stored.file, &stored.yaml, registry).map_err(|d| {
        eprintln!("the stored workflow of run {run_id} no longer compiles:");
        invalid(d)
    })?;
    Ok(Arc::new(plan))
}

/// Resumes a run with its stored workflow, compiled against today's plugins.
async fn resume_run(
    engine: &Engine,
    registry: &Registry,
    run_id: &str,
    ctl: RunControl,
) -> Result<RunReport, Failure> {
    let plan = stored_plan(engine, registry, run_id).await?;
    Ok(engine
        .resume(run_id, plan, ctl)
        .await
        .map_err(|e| miette!("{e}"))?)
}

fn control(json: bool) -> (RunControl, Option<tokio::task::JoinHandle<()>>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let ctl = RunControl {
        events: Some(tx),
        ..RunControl::default()
    };
    let cancel = ctl.cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "\ncancelling: running steps are told to stop (Ctrl-C again to quit at once)"
            );
            cancel.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let display = tokio::spawn(display::follow(rx, json));
    (ctl, Some(display))
}

async fn finish(
    report: RunReport,
    json: bool,
    display: Option<tokio::task::JoinHandle<()>>,
) -> Result<(), Failure> {
    if let Some(mut d) = display {
        // The display ends when every event sender is gone; a plugin that never stopped
        // may keep one, so the run's end does not wait on it for long.
        if tokio::time::timeout(std::time::Duration::from_secs(2), &mut d)
            .await
            .is_err()
        {
            d.abort();
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).into_diagnostic()?
        );
    } else {
        display::print_report(&report);
    }
    match report.status {
        RunStatus::Succeeded => Ok(()),
        status => Err(miette!("run {} {status}", report.run_id).into()),
    }
}

async fn main_inner(cli: Cli) -> Result<(), Failure> {
    let data = data_dir(&cli)?;
    let models_dir = mediaflow_models::ModelStore::default_dir(&data);
    if let Command::Models { command } = &cli.command {
        return models::run(command, &models_dir).map_err(Failure::from);
    }
    if let Command::Plugin { command } = &cli.command {
        return scaffold::run(command).map_err(Failure::from);
    }
    if let Command::Train { command } = &cli.command {
        return match train::run(command, &models_dir)? {
            0 => Ok(()),
            code => Err(Failure {
                code,
                report: miette!("training failed"),
            }),
        };
    }
    if let Some(done) = without_plugins(&cli).await {
        return done;
    }
    let plugins = plugins::Plugins::load(&models_dir, &data).await;
    let result = dispatch(&cli, &plugins).await;
    plugins.shutdown().await;
    result
}

/// The commands that need no plugins (so none is described or started for them).
async fn without_plugins(cli: &Cli) -> Option<Result<(), Failure>> {
    Some(match &cli.command {
        Command::Runs {
            workflow,
            status,
            limit,
            json,
        } => {
            let listed = async {
                let (store, _) = open_store(cli).await?;
                let runs = store
                    .list_runs(&RunFilter {
                        workflow: workflow.clone(),
                        status: status.map(RunStatus::from),
                        limit: Some(*limit),
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| miette!("{e}"))?;
                display::print_runs(&runs, *json);
                Ok(())
            };
            listed.await
        }
        Command::Show { run_id, json } => show(cli, run_id, *json).await,
        Command::Workers { json } => {
            let listed = async {
                let (store, _) = open_store(cli).await?;
                worker::workers(&store, *json).await?;
                Ok(())
            };
            listed.await
        }
        Command::Token { command } => {
            let done = async {
                let (store, _) = open_store(cli).await?;
                serve::token(&store, command).await?;
                Ok(())
            };
            done.await
        }
        Command::Events { command } => {
            let done = async {
                let store = match command {
                    recommend::EventsCommand::Generate { .. } => None,
                    _ => Some(open_store(cli).await?.0),
                };
                recommend::events(store.as_ref(), command).await?;
                Ok(())
            };
            done.await
        }
        Command::Eval { command } => {
            let done = async {
                let store = match recommend::eval_needs_store(command) {
                    true => Some(open_store(cli).await?.0),
                    false => None,
                };
                recommend::eval(store.as_ref(), command).await?;
                Ok(())
            };
            done.await
        }
        _ => return None,
    })
}

async fn show(cli: &Cli, run_id: &str, json: bool) -> Result<(), Failure> {
    let (store, artifacts) = open_store(cli).await?;
    let engine = Engine::new(store.clone(), artifacts, EngineOptions::default());
    let report = engine.report(run_id).await.map_err(|e| miette!("{e}"))?;
    let logs = store.logs(run_id).await.map_err(|e| miette!("{e}"))?;
    if json {
        let mut v = report.to_json();
        v["logs"] = serde_json::to_value(&logs).into_diagnostic()?;
        println!("{}", serde_json::to_string_pretty(&v).into_diagnostic()?);
    } else {
        display::print_report(&report);
        display::print_logs(&logs);
    }
    Ok(())
}

/// Queueing steps for workers, announced on stderr.
fn distribution(cli: &Cli, store: &Store) -> Result<mediaflow_engine::DispatchOptions, Failure> {
    let models_dir = mediaflow_models::ModelStore::default_dir(&data_dir(cli)?);
    eprintln!(
        "distributed: steps are queued in {} for `mediaflow worker` processes",
        store.url()
    );
    Ok(worker::dispatch_options(&models_dir))
}

/// The engine options a stored run was started with, as far as they matter to resuming it:
/// a distributed run is resumed distributed.
async fn stored_options(cli: &Cli, store: &Store, run_id: &str) -> Result<EngineOptions, Failure> {
    let run = store.get_run(run_id).await.map_err(|e| miette!("{e}"))?;
    let mut options = EngineOptions::default();
    if run
        .options
        .get("distributed")
        .and_then(serde_json::Value::as_bool)
        == Some(true)
    {
        options.distributed = Some(distribution(cli, store)?);
    }
    Ok(options)
}

async fn dispatch(cli: &Cli, plugins: &plugins::Plugins) -> Result<(), Failure> {
    let registry = &plugins.registry;
    match &cli.command {
        Command::Validate { file } => {
            let plan = compile(file, registry)?;
            println!(
                "{}: ok ({} step{}, {} input{})",
                file.display(),
                plan.steps.len(),
                if plan.steps.len() == 1 { "" } else { "s" },
                plan.inputs.len(),
                if plan.inputs.len() == 1 { "" } else { "s" },
            );
            Ok(())
        }
        Command::Run {
            file,
            inputs,
            json,
            no_cache,
            max_parallel,
            resume,
            distributed,
        } => {
            let plan = Arc::new(compile(file, registry)?);
            let (store, artifacts) = open_store(cli).await?;
            let given = inputs::parse(inputs, &plan, &artifacts)
                .await
                .map_err(usage)?;
            let mut options = EngineOptions {
                no_cache: *no_cache,
                ..EngineOptions::default()
            };
            if let Some(n) = max_parallel {
                options.max_parallel = (*n).max(1);
            }
            if *distributed {
                options.distributed = Some(distribution(cli, &store)?);
            }
            let engine = Engine::new(store.clone(), artifacts, options).with_llm(plugins.llm());
            let bound = plan
                .bind_inputs(&given)
                .map_err(|e| usage(miette!("{e}")))?;
            let previous = if *resume {
                inputs::resumable_run(&store, &plan, &bound)
                    .await
                    .map_err(|e| miette!("{e}"))?
            } else {
                None
            };
            let (ctl, display) = control(*json);
            let report = match previous {
                Some(id) => {
                    eprintln!("resuming run {id}");
                    resume_run(&engine, registry, &id, ctl).await?
                }
                None => engine
                    .run(plan, given, ctl)
                    .await
                    .map_err(|e| miette!("{e}"))?,
            };
            finish(report, *json, display).await
        }
        Command::Resume { run_id, json } => {
            let (store, artifacts) = open_store(cli).await?;
            let options = stored_options(cli, &store, run_id).await?;
            let engine = Engine::new(store, artifacts, options).with_llm(plugins.llm());
            let (ctl, display) = control(*json);
            let report = resume_run(&engine, registry, run_id, ctl).await?;
            finish(report, *json, display).await
        }
        Command::Rerun { run_id, from, json } => {
            let (store, artifacts) = open_store(cli).await?;
            let options = stored_options(cli, &store, run_id).await?;
            let engine = Engine::new(store, artifacts, options).with_llm(plugins.llm());
            let plan = stored_plan(&engine, registry, run_id).await?;
            let (ctl, display) = control(*json);
            let report = engine
                .rerun_from(run_id, plan, from, ctl)
                .await
                .map_err(|e| miette!("{e}"))?;
            finish(report, *json, display).await
        }
        Command::Schedules { workflows, json } => {
            serve::schedules(workflows, plugins, *json)?;
            Ok(())
        }
        Command::Serve(args) => {
            let (store, artifacts) = open_store(cli).await?;
            let models_dir = mediaflow_models::ModelStore::default_dir(&data_dir(cli)?);
            serve::serve(args, store, artifacts, plugins, &models_dir).await?;
            Ok(())
        }
        Command::Worker(args) => {
            let (store, artifacts) = open_store(cli).await?;
            let models_dir = mediaflow_models::ModelStore::default_dir(&data_dir(cli)?);
            worker::worker(args, store, artifacts, plugins, &models_dir).await?;
            Ok(())
        }
        Command::Runs { .. }
        | Command::Workers { .. }
        | Command::Show { .. }
        | Command::Token { .. }
        | Command::Events { .. }
        | Command::Eval { .. } => Ok(()),
        Command::Plugins { name, json } => {
            display::print_plugins(plugins, name.as_deref(), *json).map_err(usage)
        }
        Command::Models { .. } | Command::Plugin { .. } | Command::Train { .. } => Ok(()),
        Command::Schema => {
            let schema = mediaflow_workflow::schema::workflow_schema(registry);
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).into_diagnostic()?
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Serve(args) = &cli.command {
        // The service's runs may only reach files below its files root. Set before any
        // thread starts: the file steps read it from the environment.
        let root = match data_dir(&cli) {
            Ok(d) => args.files_root(&d),
            Err(f) => {
                eprintln!("error: {}", f.report);
                return ExitCode::from(f.code);
            }
        };
        if let Err(e) = std::fs::create_dir_all(&root) {
            eprintln!("error: cannot make the files root {}: {e}", root.display());
            return ExitCode::from(1);
        }
        std::env::set_var(mediaflow_builtin::FILES_ROOT_ENV, &root);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(main_inner(cli));
    // Work a plugin left behind on a blocking thread (one that ignored its cancel) must
    // not keep the process alive after the run has ended.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.report);
            if let Some(help) = f.report.help() {
                eprintln!("help: {help}");
            }
            ExitCode::from(f.code)
        }
    }
}

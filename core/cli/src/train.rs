//! `mediaflow train classifier …`: trains a text classifier head. The work (embedding the
//! texts with an ONNX model) belongs to the `mediaflow-onnx` plugin binary, so this finds
//! it where plugins are found and runs its `train-classifier` with the same arguments.

use std::path::Path;
use std::process::Command;

use clap::Subcommand;
use miette::{miette, IntoDiagnostic};

#[derive(Subcommand)]
pub enum TrainCommand {
    /// Train a text classifier head over text.embed vectors from labelled texts
    /// (`--data FILE.tsv --text-column C --label-column L --out HEAD`; `--help` for more)
    #[command(disable_help_flag = true)]
    Classifier {
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
}

/// Runs the plugin binary's trainer; its exit code becomes ours.
pub fn run(command: &TrainCommand, models_dir: &Path) -> miette::Result<u8> {
    let TrainCommand::Classifier { args } = command;
    let dirs = mediaflow_process_host::search_dirs();
    let exe = mediaflow_process_host::discover(&dirs)
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "mediaflow-onnx"))
        .ok_or_else(|| {
            miette!(
                help = "build it (`cargo build --release -p mediaflow-onnx`) and put it beside `mediaflow` or in MEDIAFLOW_PLUGINS_DIR",
                "`mediaflow train classifier` needs the mediaflow-onnx plugin binary, which is not in {}",
                dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
            )
        })?;
    let status = Command::new(&exe)
        .arg("train-classifier")
        .args(args)
        .env("MEDIAFLOW_MODELS", models_dir)
        .status()
        .into_diagnostic()?;
    Ok(status.code().unwrap_or(1).clamp(0, 255) as u8)
}

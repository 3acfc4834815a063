//! `mediaflow plugin new NAME` and `mediaflow plugin build [DIR]`: WebAssembly plugins in
//! Rust, from an empty directory to a `.wasm` a workflow can use.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Subcommand;
use miette::{miette, Result};

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Create a plugin crate from the template
    New {
        /// Crate name (also the directory), e.g. `story-tagger`
        name: String,
        /// Parent directory [default: the current one]
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Path to the `mediaflow-sdk` crate [default: this checkout's sdk/rust, else crates.io]
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Compile a plugin crate for wasm32-wasip2, copy the component beside its Cargo.toml
    /// (or to --out) and print its path
    Build {
        /// The plugin crate [default: the current directory]
        dir: Option<PathBuf>,
        /// Copy the component here instead (a file, or a directory such as your plugins dir)
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

pub fn run(command: &PluginCommand) -> Result<()> {
    match command {
        PluginCommand::New { name, dir, sdk } => {
            let parent = dir.clone().unwrap_or_else(|| PathBuf::from("."));
            let path = new_plugin(name, &parent, sdk.as_deref())?;
            println!("created {}", path.display());
            println!("next: mediaflow plugin build {}", path.display());
            Ok(())
        }
        PluginCommand::Build { dir, out } => {
            let dir = dir.clone().unwrap_or_else(|| PathBuf::from("."));
            let wasm = build_plugin(&dir, out.as_deref())?;
            println!("{}", wasm.display());
            Ok(())
        }
    }
}

/// The SDK of the checkout this binary was built from, if it is still there.
fn default_sdk() -> Option<PathBuf> {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/rust");
    sdk.join("Cargo.toml")
        .is_file()
        .then(|| sdk.canonicalize().ok())
        .flatten()
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

pub fn new_plugin(name: &str, parent: &Path, sdk: Option<&Path>) -> Result<PathBuf> {
    if !valid_name(name) {
        return Err(miette!(
            "`{name}` is not a crate name: use lowercase letters, digits, `-` and `_`, starting with a letter"
        ));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(miette!("{} already exists", dir.display()));
    }
    let sdk_dep = match sdk.map(Path::to_path_buf).or_else(default_sdk) {
        Some(p) => {
            let p = p
                .canonicalize()
                .map_err(|e| miette!("SDK at {}: {e}", p.display()))?;
            format!("{{ path = {:?} }}", p.display().to_string())
        }
        None => "\"1\"".to_owned(),
    };
    let plugin_name = format!("custom.{}", name.replace('-', "_"));
    let type_name: String = name
        .split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    let write = |rel: &str, text: String| -> Result<()> {
        let path = dir.join(rel);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).map_err(|e| miette!("{}: {e}", p.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| miette!("{}: {e}", path.display()))
    };
    write(
        "Cargo.toml",
        format!(
            r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"

[lib]
crate-type = ["cdylib"]

[dependencies]
mediaflow-sdk = {sdk_dep}

[profile.release]
opt-level = "s"
lto = true
strip = true

# A plugin is its own workspace, even inside another project's directory.
[workspace]
"#
        ),
    )?;
    write(
        "src/lib.rs",
        format!(
            r#"//! `{plugin_name}`: a mediaflow plugin. Build it with `mediaflow plugin build`.

use mediaflow_sdk::*;

struct {type_name};

impl Plugin for {type_name} {{
    fn describe() -> Descriptor {{
        Descriptor::new("{plugin_name}", "0.1.0", "Counts the words of a text")
            .input("text", Type::String)
            .option("min_length", json!({{"type": "integer", "minimum": 1, "default": 1}}))
            .output("words", Type::Integer)
    }}

    fn run(config: Value, inputs: Value) -> Result<Value, Error> {{
        let text = get_str(&inputs, "text")?;
        let min = get_u64_or(&config, "min_length", 1) as usize;
        let words = text.split_whitespace().filter(|w| w.chars().count() >= min).count();
        log::info(&format!("counted {{words}} words"));
        Ok(json!({{ "words": words }}))
    }}
}}

export!({type_name});
"#
        ),
    )?;
    write(
        "workflow.yaml",
        format!(
            r#"name: try-{name}
inputs:
  text: {{ type: string, default: "The quick brown fox jumps over the lazy dog" }}
steps:
  count:
    uses: wasm:{file}.wasm
    with:
      text: ${{{{ inputs.text }}}}
      min_length: 4
outputs:
  words: ${{{{ steps.count.outputs.words }}}}
"#,
            file = name.replace('-', "_")
        ),
    )?;
    write(".gitignore", "/target\n/*.wasm\n".to_owned())?;
    Ok(dir)
}

fn ensure_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == "wasm32-wasip2")
        })
        .unwrap_or(false);
    if installed {
        return Ok(());
    }
    eprintln!("installing the wasm32-wasip2 target (rustup target add wasm32-wasip2)");
    let ok = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(miette!(
            "cannot install the wasm32-wasip2 target; run `rustup target add wasm32-wasip2` and try again"
        ))
    }
}

pub fn build_plugin(dir: &Path, out: Option<&Path>) -> Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| miette!("{}: {e} (is this a plugin crate?)", manifest.display()))?;
    let package = text
        .lines()
        .skip_while(|l| l.trim() != "[package]")
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "name").then(|| v.trim().trim_matches('"').to_owned())
        })
        .ok_or_else(|| miette!("{} has no [package] name", manifest.display()))?;
    ensure_target()?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("target"));
    let status = Command::new("cargo")
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(&manifest)
        .env_remove("RUSTFLAGS")
        .status()
        .map_err(|e| miette!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(miette!("cargo build failed for {}", manifest.display()));
    }
    let wasm = target_dir
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", package.replace('-', "_")));
    if !wasm.is_file() {
        return Err(miette!(
            "cargo succeeded but {} is missing; is the crate `crate-type = [\"cdylib\"]`?",
            wasm.display()
        ));
    }
    let out = out.unwrap_or(dir);
    let dest = if out.is_dir() {
        out.join(wasm.file_name().unwrap_or_default())
    } else {
        out.to_path_buf()
    };
    std::fs::copy(&wasm, &dest).map_err(|e| miette!("{}: {e}", dest.display()))?;
    Ok(dest)
}

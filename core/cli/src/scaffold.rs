//! `mediaflow plugin new NAME` and `mediaflow plugin build [DIR]`: WebAssembly plugins in
//! Rust, from an empty directory to a `.wasm` a workflow can use.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Subcommand;
use mediaflow_wasm_host::build::{build_component, component_path, BuildError};
use miette::{miette, Result};
use serde::Deserialize;

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

/// Names `src/lib.rs` already uses: the template's types and the SDK's.
const TAKEN_NAMES: &[&str] = &[
    "Config",
    "Output",
    "Plugin",
    "Descriptor",
    "Error",
    "Issue",
    "File",
    "Port",
    "ValueType",
    "Value",
    "Map",
];

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
        None => "\"2\"".to_owned(),
    };
    let plugin_name = format!("custom.{}", name.replace('-', "_"));
    let mut type_name: String = name
        .split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    // The template's own types and the SDK's would be shadowed by a plugin type so named.
    if TAKEN_NAMES.contains(&type_name.as_str()) {
        type_name.push_str("Plugin");
    }
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
# serde's derive (re-exported by the SDK) names its crate by path.
serde = "1"

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

/// The step's whole `with:` map. Doc comments become the schema's descriptions.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {{
    /// The text whose words are counted.
    text: String,
    /// Shorter words are not counted.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    min_length: usize,
}}

fn one() -> usize {{
    1
}}

#[derive(Serialize, JsonSchema)]
struct Output {{
    /// How many words have at least `min_length` letters.
    words: usize,
}}

struct {type_name};

impl Plugin for {type_name} {{
    type Config = Config;
    type Output = Output;

    fn describe() -> Descriptor {{
        Descriptor::from_config::<Config>("{plugin_name}", "0.1.0", "Counts the words of a text")
            .inputs(["text"])
            .outputs_from::<Output>()
    }}

    fn run(config: Config) -> Result<Output, Error> {{
        let long_enough = |w: &&str| w.chars().count() >= config.min_length;
        let words = config.text.split_whitespace().filter(long_enough).count();
        log::info(&format!("counted {{words}} words"));
        Ok(Output {{ words }})
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

/// The `[package] name` of a crate's `Cargo.toml`.
fn package_name(manifest: &Path) -> Result<String> {
    #[derive(Deserialize)]
    struct Manifest {
        package: Option<Package>,
    }
    #[derive(Deserialize)]
    struct Package {
        name: String,
    }
    let text = std::fs::read_to_string(manifest)
        .map_err(|e| miette!("{}: {e} (is this a plugin crate?)", manifest.display()))?;
    let parsed: Manifest =
        toml::from_str(&text).map_err(|e| miette!("{}: {e}", manifest.display()))?;
    parsed
        .package
        .map(|p| p.name)
        .ok_or_else(|| miette!("{} has no [package] name", manifest.display()))
}

pub fn build_plugin(dir: &Path, out: Option<&Path>) -> Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    let package = package_name(&manifest)?;
    ensure_target()?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("target"));
    build_component(&manifest, &target_dir).map_err(|e| match e {
        // Cargo's messages were shown as they came.
        BuildError::Failed { manifest, .. } => miette!("cargo build failed for {manifest}"),
        e => miette!("{e}"),
    })?;
    let wasm = component_path(&target_dir, &package);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_name_is_read_from_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = dir.path().join("Cargo.toml");
        let text = "[lib]\nname = \"not_this\"\ncrate-type = [\"cdylib\"]\n\n\
            [package]\nversion = \"0.1.0\" # name = \"nor_this\"\nname = 'story-tagger'\n";
        std::fs::write(&manifest, text).unwrap();
        assert_eq!(package_name(&manifest).unwrap(), "story-tagger");
        std::fs::write(&manifest, "[workspace]\nmembers = [\"a\"]\n").unwrap();
        let err = package_name(&manifest).unwrap_err().to_string();
        assert!(err.ends_with("has no [package] name"), "{err}");
        std::fs::write(&manifest, "[package\n").unwrap();
        assert!(package_name(&manifest).is_err());
    }

    #[test]
    fn a_plugin_type_does_not_shadow_the_templates() {
        let dir = tempfile::tempdir().unwrap();
        let crate_dir = new_plugin("config", dir.path(), Some(dir.path())).unwrap();
        let lib = std::fs::read_to_string(crate_dir.join("src/lib.rs")).unwrap();
        assert!(lib.contains("impl Plugin for ConfigPlugin {"), "{lib}");
        assert!(lib.contains("\"custom.config\""), "{lib}");
    }
}

//! `--input name=value` parsing.

use std::path::Path;

use mediaflow_plugin_api::ValueType;
use mediaflow_store::{ArtifactStore, RunFilter, RunStatus, Store, StoreError};
use mediaflow_workflow::Plan;
use miette::miette;
use serde_json::{Map, Value};

/// Parses every `--input`. `name=@PATH` imports the file for a `file` input, reads the text
/// for a `string` input, imports every file of a directory (by name, hidden files skipped)
/// for a `list` input given a directory, and reads JSON or YAML for any other input; a
/// plain value is JSON if it parses, else a string.
pub async fn parse(
    raw: &[String],
    plan: &Plan,
    artifacts: &ArtifactStore,
) -> Result<Map<String, Value>, miette::Report> {
    let mut out = Map::new();
    for item in raw {
        let Some((name, value)) = item.split_once('=') else {
            return Err(miette!("--input `{item}` must look like NAME=VALUE"));
        };
        let ty = plan.inputs.iter().find(|i| i.name == name).map(|i| i.ty);
        let v = match (value.strip_prefix('@'), ty) {
            (path, Some(ValueType::File)) => {
                let path = Path::new(path.unwrap_or(value));
                let artifact = artifacts
                    .store_file(path, None)
                    .await
                    .map_err(|e| miette!("input `{name}`: {e}"))?;
                artifact.to_value()
            }
            (Some(path), Some(ValueType::String)) => Value::String(
                std::fs::read_to_string(path)
                    .map_err(|e| miette!("input `{name}`: cannot read {path}: {e}"))?,
            ),
            (Some(path), Some(ValueType::List)) if Path::new(path).is_dir() => {
                import_dir(name, Path::new(path), artifacts).await?
            }
            (Some(path), _) => read_structured(name, Path::new(path))?,
            (None, _) => {
                serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()))
            }
        };
        out.insert(name.to_owned(), v);
    }
    Ok(out)
}

/// Every regular, non-hidden file of `dir`, by name, imported as an artifact.
async fn import_dir(
    name: &str,
    dir: &Path,
    artifacts: &ArtifactStore,
) -> Result<Value, miette::Report> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| miette!("input `{name}`: cannot read {}: {e}", dir.display()))?;
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.'))
        })
        .collect();
    files.sort();
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let artifact = artifacts
            .store_file(&f, None)
            .await
            .map_err(|e| miette!("input `{name}`: {e}"))?;
        out.push(artifact.to_value());
    }
    Ok(Value::Array(out))
}

fn read_structured(name: &str, path: &Path) -> Result<Value, miette::Report> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| miette!("input `{name}`: cannot read {}: {e}", path.display()))?;
    if let Ok(v) = serde_json::from_str(&text) {
        return Ok(v);
    }
    serde_yaml::from_str(&text).map_err(|e| {
        miette!(
            "input `{name}`: {} is neither JSON nor YAML: {e}",
            path.display()
        )
    })
}

/// The newest unfinished run of this exact workflow with these inputs, if any.
pub async fn resumable_run(
    store: &Store,
    plan: &Plan,
    inputs: &Map<String, Value>,
) -> Result<Option<String>, StoreError> {
    let runs = store
        .list_runs(&RunFilter {
            workflow: Some(plan.name.clone()),
            status: None,
            limit: Some(50),
            ..Default::default()
        })
        .await?;
    let wanted = Value::Object(inputs.clone());
    Ok(runs
        .into_iter()
        .find(|r| {
            r.workflow_hash == plan.hash && r.status != RunStatus::Succeeded && r.inputs == wanted
        })
        .map(|r| r.id))
}

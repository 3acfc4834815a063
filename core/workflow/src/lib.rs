//! The mediaflow workflow language: YAML → a validated [`Plan`].
//!
//! The compiler reports every problem at once, each with file:line:col, the step, a caret
//! snippet and a hint (see [`Diagnostics`]). It never runs a step: it reads plugins'
//! descriptors and calls their `validate` (which a process plugin answers from its
//! process, and a `uses: wasm:` reference loads its component for).

mod ast;
mod check;
mod compile;
mod diagnostic;
mod expr;
mod parse;
mod plan;
pub mod schedule;
pub mod schema;
mod source;

use std::path::Path;

use mediaflow_plugin_api::Registry;

pub use ast::{Located, RetryPolicy, Spanned, StepDecl, WorkflowDoc};
pub use check::ConfigCheck;
pub use diagnostic::{clean, suggest, Diagnostics, Problem};
pub use expr::{EvalError, Evaluator};
pub use plan::{InputError, InputSpec, Plan, PlanStep};
pub use schedule::{CatchUp, Concurrency, Schedule};
pub use source::Source;

/// Why a workflow file could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("cannot read workflow file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not UTF-8 text (invalid byte at offset {offset}); save it as UTF-8")]
    NotUtf8 { path: String, offset: usize },
    #[error("{0}")]
    Invalid(#[from] Diagnostics),
}

/// Compiles workflow text. `file` names it in diagnostics.
pub fn compile_str(file: &str, text: &str, registry: &Registry) -> Result<Plan, Diagnostics> {
    let mut c = diagnostic::Collector::new(Source::new(file, text));
    let stem = Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("workflow")
        .to_owned();
    let doc = parse::parse(&mut c, &stem);
    let plan = doc.and_then(|doc| {
        let registry = load_referenced(&mut c, &doc, registry, file);
        compile::compile(&mut c, &doc, &registry, Evaluator::new(), file)
    });
    c.finish()?;
    plan.ok_or_else(|| Diagnostics {
        file: file.to_owned(),
        problems: Vec::new(),
    })
}

/// Loads the plugins that steps name by reference (`uses: wasm:plugin.wasm`) into a copy of
/// the registry; failures become diagnostics at the `uses:` line.
fn load_referenced(
    c: &mut diagnostic::Collector,
    doc: &WorkflowDoc,
    registry: &Registry,
    file: &str,
) -> Registry {
    let base = Path::new(file)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut out = registry.clone();
    for step in &doc.steps {
        let Some(uses) = &step.uses else { continue };
        if out.get(&uses.value).is_some() {
            continue;
        }
        let Some((loader, reference)) = registry.loader_for(&uses.value) else {
            continue;
        };
        match loader.load(reference, base) {
            // A component may declare any name; one that claims a plugin this
            // installation already has could pass for it (in `mediaflow plugins`, in logs).
            Ok(plugin) if registry.get(&plugin.descriptor().name).is_some() => {
                let name = plugin.descriptor().name.clone();
                c.push(
                    "mediaflow::plugin_name_taken",
                    Some(step.id.value.as_str()),
                    Some(uses.span),
                    format!(
                        "`{reference}` calls itself `{name}`, the name of a plugin this installation already has ({})",
                        registry.origin(&name).unwrap_or("built in")
                    ),
                    "claims a registered name",
                    Some(format!(
                        "give the component a name of its own in its `describe()`; `{name}` is taken"
                    )),
                );
            }
            Ok(plugin) => out.register_as(&uses.value, plugin, reference),
            Err(e) => c.push(
                "mediaflow::plugin_load",
                Some(step.id.value.as_str()),
                Some(uses.span),
                e.message,
                e.label,
                e.help,
            ),
        }
    }
    out
}

/// Reads and compiles a workflow file.
pub fn compile_file(path: &Path, registry: &Registry) -> Result<Plan, CompileError> {
    let display = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| CompileError::Io {
        path: display.clone(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| CompileError::NotUtf8 {
        path: display.clone(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    Ok(compile_str(&display, &text, registry)?)
}

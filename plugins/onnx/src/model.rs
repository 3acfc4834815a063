//! ONNX models on tract: loading with a symbolic batch (and sequence) size, checking the
//! model's inputs against what the plugin will feed it, optimising, and a small cache of
//! loaded models by file.

use std::path::Path;
use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::optim::Optimizer;
use tract_onnx::tract_hir::infer::{Factoid, InferenceFact};

pub type Plan = Arc<TypedRunnableModel>;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path} is not an ONNX model tract can read: {message}")]
    Load { path: String, message: String },
    /// The model's inputs are not what the plugin feeds.
    #[error("{path}: {message}")]
    Shape { path: String, message: String },
    #[error("{path}: tract cannot prepare the model: {message}")]
    Optimise { path: String, message: String },
    #[error("the model failed on this input: {0}")]
    Run(String),
}

impl ModelError {
    pub fn code(&self) -> &'static str {
        match self {
            ModelError::Load { .. } | ModelError::Optimise { .. } => "bad_model",
            ModelError::Shape { .. } => "wrong_model",
            ModelError::Run(_) => "inference",
        }
    }
}

/// tract's errors carry their context chain; show all of it on one line.
pub fn chain(e: &TractError) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// Reads the ONNX file at `path`, rewritten ([`crate::rewrite`]) before tract parses it.
pub fn read(path: &Path) -> Result<InferenceModel, ModelError> {
    let fail = |message: String| ModelError::Load {
        path: path.display().to_string(),
        message,
    };
    let onnx = tract_onnx::onnx();
    let mut proto = onnx
        .proto_model_for_path(path)
        .map_err(|e| fail(chain(&e)))?;
    crate::rewrite::rewrite(&mut proto);
    let dir = path.parent().and_then(Path::to_str);
    let parsed = onnx.parse(&proto, dir).map_err(|e| fail(chain(&e)))?;
    if !parsed.unresolved_inputs.is_empty() {
        return Err(fail(format!(
            "values used but never defined: {}",
            parsed.unresolved_inputs.join(", ")
        )));
    }
    Ok(parsed.model)
}

/// What a model input must be for the plugin: a datum type and a shape, where `None`
/// stands for a symbolic dimension (batch, sequence).
pub struct Expect<'a> {
    pub name: &'a str,
    pub datum: DatumType,
    pub shape: Vec<Option<usize>>,
}

fn describe_shape(shape: &[Option<usize>]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| d.map_or("?".to_owned(), |d| d.to_string()))
        .collect();
    format!("[{}]", dims.join(", "))
}

/// Checks input `ix` of `model` against `want` (what the model declares, where it declares
/// it), so a model built for other input gets a clear error instead of tract's.
pub fn check_input(
    model: &InferenceModel,
    ix: usize,
    want: &Expect,
    path: &Path,
) -> Result<(), ModelError> {
    let fact: &InferenceFact = model.input_fact(ix).map_err(|e| ModelError::Load {
        path: path.display().to_string(),
        message: chain(&e),
    })?;
    let name = model
        .input_outlets()
        .ok()
        .and_then(|o| o.get(ix))
        .map(|o| model.node(o.node).name.clone())
        .unwrap_or_else(|| format!("#{ix}"));
    let wrong = |what: String| ModelError::Shape {
        path: path.display().to_string(),
        message: format!(
            "its input `{name}` is {}, but {} feeds {:?} {}: {what}",
            fact.format_dt_shape(),
            want.name,
            want.datum,
            describe_shape(&want.shape)
        ),
    };
    if let Some(dt) = fact.datum_type.concretize() {
        if dt != want.datum {
            return Err(wrong(format!("the element type is {dt:?}")));
        }
    }
    if let Some(rank) = fact.shape.rank().concretize() {
        if rank as usize != want.shape.len() {
            return Err(wrong(format!("it has {rank} dimensions")));
        }
        for (i, (got, want)) in fact.shape.dims().zip(&want.shape).enumerate() {
            let (Some(got), Some(want)) = (got.concretize(), want) else {
                continue;
            };
            if let Ok(got) = got.to_i64() {
                if got != *want as i64 && !(i == 0 && got == 1) {
                    return Err(wrong(format!("dimension {i} is {got}, not {want}")));
                }
            }
        }
    }
    Ok(())
}

/// Sets input `ix` to `datum` with the model's own declared shape when it declares a full
/// one (its symbols may be tied to constants inside the graph), else to `fallback`.
pub fn set_input(
    model: &mut InferenceModel,
    ix: usize,
    datum: DatumType,
    fallback: TVec<TDim>,
    path: &Path,
) -> Result<(), ModelError> {
    let declared = model.input_fact(ix).ok().and_then(|f| f.shape.concretize());
    let shape = declared.unwrap_or(fallback);
    model
        .set_input_fact(ix, InferenceFact::dt_shape(datum, shape))
        .map_err(|e| ModelError::Shape {
            path: path.display().to_string(),
            message: chain(&e),
        })
}

/// Sets input `ix` to `datum` and `shape`, whatever the model declares.
pub fn force_input(
    model: &mut InferenceModel,
    ix: usize,
    datum: DatumType,
    shape: TVec<TDim>,
    path: &Path,
) -> Result<(), ModelError> {
    model
        .set_input_fact(ix, InferenceFact::dt_shape(datum, shape))
        .map_err(|e| ModelError::Shape {
            path: path.display().to_string(),
            message: chain(&e),
        })
}

/// Typed, decluttered and optimised, without the passes of tract 0.23.9 that break models
/// we ship (each found with a catalog model and checked against onnxruntime in
/// `tests/parity.rs`):
/// - `FoldUniformMask` folds all-MiniLM-L6's causal-style attention mask (`arange ≥ 0`,
///   always true) into a uniform of the wrong shape, and the model then fails on every
///   input (`Iff: expected batch,1,sequence,sequence, got N,1,1,S`). It is always left out:
///   it only saves a mask computation.
/// - `ChangeAxes` failed on open-nsfw (a per-channel convolution bias kept as `[C, 1]` ends
///   up on the wrong axis: "Bias should be scalar or a vector with one value per output
///   channel") until [`crate::rewrite::conv`] folded its convolution tails. It is left out
///   only when the optimisation with it fails, for models the rewrite does not cover.
pub fn optimise(model: InferenceModel, path: &Path) -> Result<Plan, ModelError> {
    let fail = |e: TractError| ModelError::Optimise {
        path: path.display().to_string(),
        message: chain(&e),
    };
    let typed = model.into_typed().map_err(fail)?;
    let run = |mut m: TypedModel, without: &[&str]| -> TractResult<TypedModel> {
        let mut declutter = Optimizer::declutter();
        declutter
            .passes
            .retain(|p| !without.iter().any(|w| format!("{p:?}").contains(w)));
        declutter.optimize(&mut m)?;
        m.optimize()?;
        Ok(m)
    };
    let optimised = match run(typed.clone(), &["FoldUniformMask"]) {
        Ok(m) => m,
        Err(_) => run(typed, &["FoldUniformMask", "ChangeAxes"]).map_err(fail)?,
    };
    optimised.into_runnable().map_err(fail)
}

/// Loaded models by key (their file, and whatever else makes them another model), the
/// most recently used kept (a few; each is tens of MB).
pub struct Cache<T> {
    keep: usize,
    loaded: Mutex<Vec<(String, Arc<T>)>>,
}

impl<T> Cache<T> {
    pub fn new(keep: usize) -> Self {
        Cache {
            keep: keep.max(1),
            loaded: Mutex::new(Vec::new()),
        }
    }

    /// The model under `key`, loaded by `load` if it is not in the cache.
    pub fn get<E>(&self, key: &str, load: impl FnOnce() -> Result<T, E>) -> Result<Arc<T>, E> {
        {
            let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = loaded.iter().position(|(k, _)| k == key) {
                let hit = loaded.remove(i);
                let model = hit.1.clone();
                loaded.push(hit);
                return Ok(model);
            }
        }
        let model = Arc::new(load()?);
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        loaded.retain(|(k, _)| k != key);
        loaded.push((key.to_owned(), model.clone()));
        let over = loaded.len().saturating_sub(self.keep);
        loaded.drain(..over);
        Ok(model)
    }
}

/// A key that tells models apart in a batch: the model's address.
pub fn key<T>(model: &Arc<T>) -> usize {
    Arc::as_ptr(model) as *const () as usize
}

/// Symbols that stand for the batch and sequence sizes.
pub struct Symbols {
    pub batch: Symbol,
    pub sequence: Symbol,
}

pub fn symbols(model: &InferenceModel) -> Symbols {
    Symbols {
        batch: model.symbols.sym("N"),
        sequence: model.symbols.sym("S"),
    }
}

/// Keeps only the names in `outputs` as the model's outputs, in that order.
pub fn select_outputs(
    model: &mut InferenceModel,
    outputs: &[&str],
    path: &Path,
) -> Result<(), ModelError> {
    model
        .select_outputs_by_name(outputs)
        .map_err(|e| ModelError::Shape {
            path: path.display().to_string(),
            message: format!(
                "it has no output named {}: {}",
                outputs.join(", "),
                chain(&e)
            ),
        })
}

/// The names of a model's outputs and their declared ranks.
pub fn outputs(model: &InferenceModel) -> Vec<(String, Option<i64>)> {
    model
        .output_outlets()
        .map(|o| o.to_vec())
        .unwrap_or_default()
        .into_iter()
        .map(|o| {
            let name = model
                .outlet_label(o)
                .map(str::to_owned)
                .unwrap_or_else(|| model.node(o.node).name.clone());
            let rank = model
                .outlet_fact(o)
                .ok()
                .and_then(|f| f.shape.rank().concretize());
            (name, rank)
        })
        .collect()
}

//! The compiled, validated form of a workflow that the engine runs.

use std::sync::Arc;
use std::time::Duration;

use mediaflow_plugin_api::{ArtifactRef, Permission, Plugin, ValueType};
use serde_json::{Map, Value};

use crate::ast::RetryPolicy;
use crate::check::ConfigCheck;
use crate::expr::Evaluator;

/// A declared workflow input.
#[derive(Clone, Debug)]
pub struct InputSpec {
    pub name: String,
    pub ty: ValueType,
    pub default: Option<Value>,
    pub required: bool,
    pub description: String,
}

/// One step, ready to run.
pub struct PlanStep {
    pub id: String,
    pub plugin: Arc<dyn Plugin>,
    /// The `with:` map, expressions unresolved.
    pub with: Value,
    /// Indices (into [`Plan::steps`]) of the steps this one waits for.
    pub deps: Vec<usize>,
    pub when: Option<String>,
    pub for_each: Option<Value>,
    pub concurrency: Option<usize>,
    pub retry: RetryPolicy,
    pub timeout: Option<Duration>,
    pub cache: bool,
    /// Capabilities granted to a sandboxed plugin (`permissions:`).
    pub permissions: Arc<[Permission]>,
    /// Tags a worker must have (`--tags`) to run the step in a distributed run.
    pub runs_on: Vec<String>,
    /// Line of the step's id in the workflow file, for runtime errors.
    pub line: usize,
    pub(crate) check: ConfigCheck,
}

impl std::fmt::Debug for PlanStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanStep")
            .field("id", &self.id)
            .field("uses", &self.plugin.descriptor().name)
            .field("deps", &self.deps)
            .finish_non_exhaustive()
    }
}

impl PlanStep {
    /// Checks a resolved `with:` map against the plugin's schema and `validate`.
    pub fn check_config(&self, config: &Value) -> Result<(), Vec<String>> {
        self.check.check(config)
    }
}

/// Why a run's inputs were refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InputError {
    #[error("missing required input `{name}`: pass it with `--input {name}=VALUE`")]
    Missing { name: String },
    #[error("unknown input `{name}`; this workflow declares: {declared}")]
    Unknown { name: String, declared: String },
    #[error("input `{name}` must be {expected}, got {got}")]
    WrongType {
        name: String,
        expected: ValueType,
        got: ValueType,
    },
}

/// A validated workflow: steps in dependency order, every reference checked.
#[derive(Debug)]
pub struct Plan {
    pub name: String,
    pub description: String,
    /// The file name used in diagnostics.
    pub file: String,
    /// The YAML text, stored with every run so `resume` can rebuild the plan.
    pub yaml: String,
    /// sha256 of the YAML text.
    pub hash: String,
    pub inputs: Vec<InputSpec>,
    /// In topological order: a step's deps come before it.
    pub steps: Vec<PlanStep>,
    pub outputs: Vec<(String, Value)>,
    pub timeout: Option<Duration>,
    pub max_parallel: Option<usize>,
    /// When `mediaflow serve` starts this workflow by itself (`schedule:`).
    pub schedules: Vec<crate::schedule::Schedule>,
    pub evaluator: Evaluator,
}

impl Plan {
    pub fn step(&self, id: &str) -> Option<&PlanStep> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// Applies defaults and checks types. File inputs must already be artifact references.
    pub fn bind_inputs(
        &self,
        given: &Map<String, Value>,
    ) -> Result<Map<String, Value>, InputError> {
        if let Some(name) = given
            .keys()
            .find(|k| !self.inputs.iter().any(|i| &i.name == *k))
        {
            return Err(InputError::Unknown {
                name: name.clone(),
                declared: if self.inputs.is_empty() {
                    "(no inputs)".to_owned()
                } else {
                    self.inputs
                        .iter()
                        .map(|i| i.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            });
        }
        let mut out = Map::new();
        for spec in &self.inputs {
            let value = match given.get(&spec.name).or(spec.default.as_ref()) {
                Some(v) => v.clone(),
                None if spec.required => {
                    return Err(InputError::Missing {
                        name: spec.name.clone(),
                    })
                }
                None => Value::Null,
            };
            let got = ValueType::of(&value);
            let ok = value.is_null()
                || match spec.ty {
                    ValueType::File => ArtifactRef::from_value(&value).is_some(),
                    ty => got.fits(ty),
                };
            if !ok {
                return Err(InputError::WrongType {
                    name: spec.name.clone(),
                    expected: spec.ty,
                    got,
                });
            }
            out.insert(spec.name.clone(), value);
        }
        Ok(out)
    }
}

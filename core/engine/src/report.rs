//! The JSON view of a run that `mediaflow run --json` and `mediaflow show` print.

use std::collections::BTreeMap;

use mediaflow_store::{RunRecord, RunStatus, StepRecord, StepStatus};
use serde::Serialize;
use serde_json::Value;

/// One step of a run. For a `for_each` step, `outputs` is the list of item outputs and
/// `items` has each item's status.
#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    pub status: StepStatus,
    pub attempts: u32,
    pub outputs: Value,
    pub error: Option<Value>,
    pub duration_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// In a distributed run, the `mediaflow worker` that ran its last attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<ItemReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ItemReport {
    pub index: usize,
    pub status: StepStatus,
    pub attempts: u32,
    pub error: Option<Value>,
    pub duration_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

/// A run and its steps.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub workflow: String,
    pub status: RunStatus,
    pub inputs: Value,
    pub outputs: Value,
    pub error: Option<Value>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub resumed_count: i64,
    pub steps: BTreeMap<String, StepReport>,
}

impl RunReport {
    pub fn build(run: RunRecord, records: Vec<StepRecord>) -> Self {
        let mut steps: BTreeMap<String, StepReport> = BTreeMap::new();
        let mut items: Vec<StepRecord> = Vec::new();
        for r in records {
            if r.item_index.is_some() {
                items.push(r);
                continue;
            }
            steps.insert(
                r.step_id.clone(),
                StepReport {
                    status: r.status,
                    attempts: r.attempts,
                    outputs: r.outputs.unwrap_or(Value::Null),
                    error: r.error,
                    duration_ms: r.duration_ms,
                    started_at: r.started_at,
                    worker: r.ran_on,
                    items: Vec::new(),
                },
            );
        }
        items.sort_by_key(|r| r.item_index);
        for r in items {
            let Some(index) = r.item_index else { continue };
            let entry = steps
                .entry(r.step_id.clone())
                .or_insert_with(|| StepReport {
                    status: StepStatus::Running,
                    attempts: 0,
                    outputs: Value::Null,
                    error: None,
                    duration_ms: None,
                    started_at: r.started_at,
                    worker: None,
                    items: Vec::new(),
                });
            entry.items.push(ItemReport {
                index,
                status: r.status,
                attempts: r.attempts,
                error: r.error,
                duration_ms: r.duration_ms,
                worker: r.ran_on,
            });
        }
        RunReport {
            run_id: run.id,
            workflow: run.workflow_name,
            status: run.status,
            inputs: run.inputs,
            outputs: run.outputs.unwrap_or(Value::Null),
            error: run.error,
            created_at: run.created_at,
            finished_at: run.finished_at,
            resumed_count: run.resumed_count,
            steps,
        }
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Status of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// Status of a step (or of one `for_each` item).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Running,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
    /// Served from the step cache.
    Cached,
}

macro_rules! string_enum {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(Self::$v),)* _ => None }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(RunStatus {
    Running => "running", Succeeded => "succeeded", Failed => "failed",
    Cancelled => "cancelled",
});
string_enum!(StepStatus {
    Running => "running", Succeeded => "succeeded", Failed => "failed",
    Skipped => "skipped", Cancelled => "cancelled", Cached => "cached",
});

impl RunStatus {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

impl StepStatus {
    /// A result that resume keeps: the step never runs again.
    pub fn is_done_ok(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded | StepStatus::Cached | StepStatus::Skipped
        )
    }

    pub fn is_finished(self) -> bool {
        self != StepStatus::Running
    }
}

/// One row of `runs`.
#[derive(Clone, Debug, Serialize)]
pub struct RunRecord {
    pub id: String,
    pub workflow_hash: String,
    pub workflow_name: String,
    pub status: RunStatus,
    pub inputs: Value,
    pub options: Value,
    pub outputs: Option<Value>,
    pub error: Option<Value>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub resumed_count: i64,
    pub owner: Option<String>,
    pub heartbeat_at: Option<i64>,
}

/// One row of `step_runs`. `item_index` is `None` for the step as a whole and `Some(i)` for
/// item `i` of a `for_each` fan-out.
#[derive(Clone, Debug, Serialize)]
pub struct StepRecord {
    pub run_id: String,
    pub step_id: String,
    pub item_index: Option<usize>,
    pub status: StepStatus,
    pub attempts: u32,
    pub cache_key: Option<String>,
    pub outputs: Option<Value>,
    pub error: Option<Value>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub worker: Option<String>,
    /// In a distributed run, the `mediaflow worker` that ran the last attempt.
    pub ran_on: Option<String>,
}

impl StepRecord {
    pub fn new(run_id: &str, step_id: &str, item_index: Option<usize>, status: StepStatus) -> Self {
        StepRecord {
            run_id: run_id.to_owned(),
            step_id: step_id.to_owned(),
            item_index,
            status,
            attempts: 0,
            cache_key: None,
            outputs: None,
            error: None,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            worker: None,
            ran_on: None,
        }
    }
}

/// One line a step logged.
#[derive(Clone, Debug, Serialize)]
pub struct LogRecord {
    pub step_id: String,
    pub item_index: Option<usize>,
    pub ts: i64,
    pub level: String,
    pub message: String,
}

/// Which runs `Store::list_runs` returns.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub workflow: Option<String>,
    pub status: Option<RunStatus>,
    pub limit: Option<i64>,
    /// Only runs created at or after this instant (ms since the epoch).
    pub since: Option<i64>,
    /// Only runs listed after this one: its `(created_at, id)`, from the previous page.
    pub before: Option<(i64, String)>,
}

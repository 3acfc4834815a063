//! The workflow syntax tree: what the YAML says, with the span of everything that can be
//! wrong.

use std::collections::HashMap;
use std::time::Duration;

use mediaflow_plugin_api::ValueType;
use miette::SourceSpan;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A value with the span it came from.
#[derive(Clone, Debug)]
pub struct Spanned<T> {
    pub value: T,
    pub span: SourceSpan,
}

/// A JSON value converted from YAML, with the span of each node by JSON pointer and of each
/// mapping key by the pointer of its value.
#[derive(Clone, Debug, Default)]
pub struct Located {
    pub value: Value,
    pub spans: HashMap<String, SourceSpan>,
    pub key_spans: HashMap<String, SourceSpan>,
}

impl Located {
    /// The span for a JSON pointer, falling back to the nearest ancestor.
    pub fn span_at(&self, pointer: &str) -> Option<SourceSpan> {
        let mut p = pointer.to_owned();
        loop {
            if let Some(s) = self.spans.get(&p) {
                return Some(*s);
            }
            match p.rfind('/') {
                Some(i) => p.truncate(i),
                None => return self.spans.get("").copied(),
            }
        }
    }
}

/// A declared workflow input.
#[derive(Clone, Debug)]
pub struct InputDecl {
    pub name: Spanned<String>,
    pub ty: ValueType,
    pub default: Option<Value>,
    pub required: bool,
    pub description: String,
}

/// Retry policy: `retry: { max_attempts: 3, backoff: 2s, max_backoff: 1m, jitter: true }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    #[serde(with = "duration_ms")]
    pub backoff: Duration,
    #[serde(with = "duration_ms")]
    pub max_backoff: Duration,
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 1,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `next` (2, 3, …), without jitter: `backoff * 2^(next-2)`,
    /// capped at `max_backoff`.
    pub fn base_delay(&self, next: u32) -> Duration {
        let exp = next.saturating_sub(2).min(30);
        self.backoff
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// One step as written.
#[derive(Clone, Debug)]
pub struct StepDecl {
    pub id: Spanned<String>,
    pub uses: Option<Spanned<String>>,
    pub with: Located,
    pub needs: Vec<Spanned<String>>,
    pub when: Option<Spanned<String>>,
    pub for_each: Option<Located>,
    pub concurrency: Option<usize>,
    pub retry: RetryPolicy,
    pub timeout: Option<Duration>,
    pub cache: bool,
    /// Capabilities granted to a sandboxed plugin.
    pub permissions: Vec<Spanned<String>>,
    /// Tags a worker must have to run the step in a distributed run (`runs_on: [gpu]`).
    pub runs_on: Vec<String>,
    pub description: String,
}

/// A whole workflow file as written.
#[derive(Clone, Debug)]
pub struct WorkflowDoc {
    pub name: Spanned<String>,
    pub description: String,
    pub inputs: Vec<InputDecl>,
    pub steps: Vec<StepDecl>,
    pub outputs: Vec<(Spanned<String>, Located)>,
    pub timeout: Option<Duration>,
    pub max_parallel: Option<usize>,
    /// `schedule:` entries, each with the span of its mapping.
    pub schedules: Vec<(SourceSpan, crate::schedule::Schedule)>,
}

//! A plugin process for the process-host tests: `proc.echo` (sleeps, logs, reports
//! progress, echoes; with `ignore_cancel` it sleeps through a cancel, as a stuck plugin
//! would), `proc.upper` (reads a text artifact, writes it upper-cased as a new
//! artifact) and `proc.abort` (kills its own process).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mediaflow_plugin_api::{
    ArtifactRef, ConfigIssue, Descriptor, Plugin, PluginError, Port, RunContext, Value, ValueType,
};
use serde_json::json;

struct Echo(Descriptor);
struct Upper(Descriptor);
struct Abort(Descriptor);

#[async_trait]
impl Plugin for Echo {
    fn descriptor(&self) -> &Descriptor {
        &self.0
    }

    /// A check only the process can make: `value` must not be the word `forbidden`.
    fn validate(&self, config: &Value) -> Result<(), Vec<ConfigIssue>> {
        match config.get("value").and_then(Value::as_str) {
            Some("forbidden") => Err(vec![ConfigIssue::new(
                "/value",
                format!("`forbidden` is refused by process {}", std::process::id()),
            )
            .with_help("echo anything else")]),
            _ => Ok(()),
        }
    }

    async fn run(&self, config: Value, cx: &RunContext) -> Result<Value, PluginError> {
        let ms = config.get("ms").and_then(Value::as_u64).unwrap_or(0);
        let unix_ms = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0)
        };
        let started_ms = unix_ms();
        cx.info(&format!("echo in pid {}", std::process::id()));
        cx.progress(0.5, Some("half way"));
        if config["ignore_cancel"].as_bool() == Some(true) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        } else if ms > 0 {
            let started = std::time::Instant::now();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                _ = cx.cancelled() => {
                    // Tests check that `cancel` arrived here, not only that the host gave up.
                    cx.info(&format!("saw the cancel after {} ms", started.elapsed().as_millis()));
                    return Err(PluginError::cancelled());
                }
            }
        }
        Ok(json!({
            "value": config.get("value").cloned().unwrap_or(Value::Null),
            "pid": std::process::id(),
            // When the call ran, as the plugin process saw it.
            "started_ms": started_ms,
            "finished_ms": unix_ms(),
        }))
    }
}

#[async_trait]
impl Plugin for Upper {
    fn descriptor(&self) -> &Descriptor {
        &self.0
    }

    async fn run(&self, config: Value, cx: &RunContext) -> Result<Value, PluginError> {
        let input = config
            .get("file")
            .and_then(ArtifactRef::from_value)
            .ok_or_else(|| PluginError::new("bad_config", "`file` must be an artifact"))?;
        let path = cx.artifact_path(&input).await?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| PluginError::new("io", e.to_string()).retryable())?;
        let out = cx
            .artifacts()
            .put_bytes(
                text.to_uppercase().as_bytes(),
                "text/plain",
                Some("upper.txt"),
            )
            .await?;
        Ok(json!({"file": out.to_value()}))
    }
}

#[async_trait]
impl Plugin for Abort {
    fn descriptor(&self) -> &Descriptor {
        &self.0
    }

    async fn run(&self, _config: Value, _cx: &RunContext) -> Result<Value, PluginError> {
        eprintln!("about to abort");
        std::process::abort()
    }
}

/// `proc.pinned`: runs its work on a [`PinnedThread`], as the native plugins do; with
/// `panic: true` the work panics and takes the thread with it.
struct Pinned(Descriptor, mediaflow_plugin_support::PinnedThread);

#[async_trait::async_trait]
impl Plugin for Pinned {
    fn descriptor(&self) -> &Descriptor {
        &self.0
    }

    async fn run(&self, config: Value, _cx: &RunContext) -> Result<Value, PluginError> {
        let panic = config["panic"].as_bool().unwrap_or(false);
        let pid = std::process::id();
        self.1
            .run(move || {
                if panic {
                    panic!("the worker thread dies");
                }
                json!({ "pid": pid })
            })
            .await
            .ok_or_else(|| {
                PluginError::new(
                    mediaflow_protocol::PLUGIN_BROKEN,
                    "the worker thread is gone; the plugin process restarts",
                )
            })
    }
}

#[tokio::main]
async fn main() {
    let echo = Descriptor::new("proc.echo", "1.0.0", "echo, in another process")
        .input(Port::new("value", ValueType::Any))
        .output(Port::new("value", ValueType::Any))
        .output(Port::new("pid", ValueType::Integer))
        .output(Port::new("started_ms", ValueType::Integer))
        .output(Port::new("finished_ms", ValueType::Integer))
        .schema(json!({"type": "object", "properties": {"value": {}, "ms": {"type": "integer"}, "ignore_cancel": {"type": "boolean"}}, "additionalProperties": false}));
    let upper = Descriptor::new("proc.upper", "1.0.0", "upper-case a text artifact")
        .input(Port::new("file", ValueType::File).required())
        .output(Port::new("file", ValueType::File))
        .schema(json!({"type": "object", "required": ["file"], "properties": {"file": {"type": "object"}}}));
    let abort = Descriptor::new("proc.abort", "1.0.0", "crashes its process")
        .output(Port::new("never", ValueType::Any))
        .not_cacheable();
    let pinned = Descriptor::new("proc.pinned", "1.0.0", "works on one pinned thread")
        .output(Port::new("pid", ValueType::Integer))
        .schema(json!({"type": "object", "properties": {"panic": {"type": "boolean"}}}))
        .not_cacheable();
    let plugins: Vec<Arc<dyn Plugin>> = vec![
        Arc::new(Echo(echo)),
        Arc::new(Upper(upper)),
        Arc::new(Abort(abort)),
        Arc::new(Pinned(
            pinned,
            mediaflow_plugin_support::PinnedThread::start("proc-pinned"),
        )),
    ];
    mediaflow_protocol::serve("testplugin-proc", "1.0.0", plugins).await;
}

//! One plugin served by a [`Supervisor`]'s process, behind the [`Plugin`] trait.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mediaflow_plugin_api::{
    ArtifactRef, ConfigIssue, Descriptor, Plugin, PluginError, RunContext, Value,
};
use mediaflow_protocol::{CallContext, HostMessage, PluginMessage};

use crate::io;
use crate::supervisor::{crashed, Conn, Supervisor};

/// How long the compiler waits for a plugin process to check a step's settings (this
/// includes starting the process).
const VALIDATE_TIMEOUT: Duration = Duration::from_secs(60);

/// One plugin served by a [`Supervisor`]'s process.
pub struct ProcessPlugin {
    descriptor: Descriptor,
    supervisor: Arc<Supervisor>,
}

impl ProcessPlugin {
    pub(crate) fn new(descriptor: Descriptor, supervisor: Arc<Supervisor>) -> Self {
        ProcessPlugin {
            descriptor,
            supervisor,
        }
    }
}

static SCRATCH_SEQ: AtomicU64 = AtomicU64::new(0);

/// A per-call scratch path inside the process's private scratch root, removed when the
/// call ends. The plugin creates it (and refuses one that exists) only if it writes an
/// artifact.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        // Most calls write no output and there is nothing to remove: one failed syscall.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Tells the process to stop a call whose future was dropped (a timeout, an abort) or
/// that was cancelled, unless it already ended.
struct CallGuard {
    conn: Arc<Conn>,
    id: u64,
    ended: bool,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if !self.ended {
            self.conn.send(HostMessage::Cancel { id: self.id });
        }
        self.conn.close_call(self.id);
    }
}

/// Moves output artifacts the plugin wrote to the scratch dir into the artifact store.
async fn import_outputs(v: &mut Value, scratch: &Path, cx: &RunContext) -> Result<(), PluginError> {
    let mut stored = BTreeMap::new();
    for a in ArtifactRef::find_all(v) {
        let file = scratch.join(&a.sha256);
        if stored.contains_key(&a.sha256) || tokio::fs::metadata(&file).await.is_err() {
            continue;
        }
        let r = cx.artifacts().put_file(&file, Some(&a.media_type)).await?;
        stored.insert(a.sha256.clone(), r);
    }
    ArtifactRef::replace_all(v, &mut |a| match stored.get(&a.sha256) {
        Some(r) => ArtifactRef {
            name: a.name.clone(),
            ..r.clone()
        }
        .to_value(),
        None => a.to_value(),
    });
    Ok(())
}

#[async_trait::async_trait]
impl Plugin for ProcessPlugin {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// Asks the plugin process (starting it if needed) to check the settings.
    fn validate(&self, config: &Value) -> Result<(), Vec<ConfigIssue>> {
        let sup = self.supervisor.clone();
        let plugin = self.descriptor.name.clone();
        let config = config.clone();
        let asked = io::block_on(
            async move {
                let conn = sup.connection().await?;
                let (id, mut rx) = conn.open_call();
                let _guard = CallGuard {
                    conn: conn.clone(),
                    id,
                    ended: true,
                };
                if !conn.send(HostMessage::Validate { id, plugin, config }) {
                    return Err(crashed(&sup.binary.name, "cannot be written to".into()));
                }
                match rx.recv().await {
                    Some(PluginMessage::Validated { issues, .. }) => Ok(issues),
                    Some(PluginMessage::Error { error, .. }) => Err(error),
                    _ => Err(crashed(&sup.binary.name, "closed the call".into())),
                }
            },
            VALIDATE_TIMEOUT,
        );
        let unchecked = |why: String| {
            Err(vec![ConfigIssue::new(
                "",
                format!("the settings could not be checked: {why}"),
            )])
        };
        match asked {
            Some(Ok(issues)) if issues.is_empty() => Ok(()),
            Some(Ok(issues)) => Err(issues),
            Some(Err(e)) => unchecked(e.message),
            None => unchecked(format!(
                "plugin process `{}` did not answer within {} s",
                self.supervisor.binary.name,
                VALIDATE_TIMEOUT.as_secs()
            )),
        }
    }

    async fn run(&self, config: Value, cx: &RunContext) -> Result<Value, PluginError> {
        let mut artifacts = BTreeMap::new();
        for a in ArtifactRef::find_all(&config) {
            artifacts.insert(a.sha256.clone(), cx.artifact_path(&a).await?);
        }
        let conn = self.supervisor.connection().await?;
        let name = &self.supervisor.binary.name;
        let scratch = Scratch(conn.scratch_root.path().join(format!(
            "call-{}",
            SCRATCH_SEQ.fetch_add(1, Ordering::Relaxed)
        )));
        let (id, mut rx) = conn.open_call();
        let mut guard = CallGuard {
            conn: conn.clone(),
            id,
            ended: false,
        };
        if !conn.is_alive() {
            guard.ended = true;
            return Err(crashed(name, "exited before the call started".into()));
        }
        let request = HostMessage::Run {
            id,
            plugin: self.descriptor.name.clone(),
            config,
            context: CallContext {
                run_id: cx.run_id.clone(),
                step_id: cx.step_id.clone(),
                item_index: cx.item_index,
                attempt: cx.attempt,
                artifacts,
                scratch_dir: scratch.0.clone(),
            },
        };
        if !conn.write(&request).await {
            guard.ended = true;
            return Err(crashed(name, "cannot be written to".into()));
        }
        let mut cancel_sent = false;
        // Host calls the process makes for this run; aborted if the run ends first.
        let mut host_calls = tokio::task::JoinSet::new();
        loop {
            let msg = tokio::select! {
                m = rx.recv() => m,
                Some(_) = host_calls.join_next(), if !host_calls.is_empty() => continue,
                _ = cx.cancelled(), if !cancel_sent => {
                    cancel_sent = true;
                    conn.write(&HostMessage::Cancel { id }).await;
                    continue;
                }
            };
            match msg {
                Some(PluginMessage::Progress {
                    fraction, message, ..
                }) => cx.progress(fraction, message.as_deref()),
                Some(PluginMessage::Log { level, message, .. }) => cx.log(level, &message),
                Some(PluginMessage::HostCall { call, request, .. }) => {
                    let (conn, cx) = (conn.clone(), cx.clone());
                    host_calls.spawn(async move {
                        let result = crate::host_calls::answer(*request, &cx).await;
                        conn.write(&HostMessage::HostReply { call, result }).await;
                    });
                }
                Some(PluginMessage::Result { mut outputs, .. }) => {
                    guard.ended = true;
                    import_outputs(&mut outputs, &scratch.0, cx).await?;
                    return Ok(outputs);
                }
                Some(PluginMessage::Error { error, .. }) => {
                    guard.ended = true;
                    if error.code == mediaflow_protocol::PLUGIN_BROKEN {
                        conn.mark_broken();
                    }
                    return Err(error);
                }
                Some(_) => {}
                None => {
                    guard.ended = true;
                    return Err(crashed(name, "closed the call".into()));
                }
            }
        }
    }
}

//! Runs plugins that live in their own processes (`mediaflow-llm`, `mediaflow-asr`, or any
//! executable that speaks [`mediaflow_protocol`]).
//!
//! A [`Supervisor`] owns one plugin executable: it starts the process on first use, checks
//! the protocol version in its hello, multiplexes concurrent calls over its stdin/stdout,
//! relays progress and logs, passes artifacts as paths, and starts the process again after
//! it dies. A crash fails only the calls that were in flight, with a retryable error that
//! quotes the end of the plugin's stderr.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mediaflow_plugin_api::{ArtifactRef, Descriptor, Plugin, PluginError, RunContext, Value};
use mediaflow_protocol::{
    decode, encode, CallContext, HostMessage, PluginMessage, PROTOCOL_VERSION,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// Why a plugin executable could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot start plugin {path}: {source}")]
    Spawn {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin {path} did not introduce itself: {message}")]
    Handshake { path: String, message: String },
}

/// A plugin executable and what it offers.
#[derive(Clone, Debug)]
pub struct PluginBinary {
    pub path: PathBuf,
    pub name: String,
    pub version: String,
    pub descriptors: Vec<Descriptor>,
}

/// Where plugin executables are looked for, in order: beside the running `mediaflow`,
/// each directory of `MEDIAFLOW_PLUGINS_DIR` (`:`-separated), then `PATH`.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        dirs.push(dir);
    }
    for var in ["MEDIAFLOW_PLUGINS_DIR", "PATH"] {
        if let Some(v) = std::env::var_os(var) {
            dirs.extend(std::env::split_paths(&v));
        }
    }
    dirs
}

/// Executables named `mediaflow-*` in `dirs`; the first of each name wins.
pub fn discover(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        found.sort();
        for path in found {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !name.starts_with("mediaflow-") || name.contains('.') || !is_executable(&path) {
                continue;
            }
            if seen.insert(name.to_owned()) {
                out.push(path);
            }
        }
    }
    out
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn check_hello(path: &Path, line: &str) -> Result<PluginBinary, HostError> {
    let bad = |message: String| HostError::Handshake {
        path: path.display().to_string(),
        message,
    };
    match decode::<PluginMessage>(line).map_err(|e| bad(e.to_string()))? {
        PluginMessage::Hello {
            protocol,
            name,
            version,
            plugins,
        } => {
            if protocol != PROTOCOL_VERSION {
                return Err(bad(mediaflow_protocol::ProtocolError::Version {
                    got: protocol,
                }
                .to_string()));
            }
            Ok(PluginBinary {
                path: path.to_path_buf(),
                name,
                version,
                descriptors: plugins,
            })
        }
        other => Err(bad(format!("expected a hello, got {other:?}"))),
    }
}

/// Asks an executable what it offers (`--describe`), without starting it for real.
pub async fn describe(path: &Path) -> Result<PluginBinary, HostError> {
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        Command::new(path)
            .arg("--describe")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output(),
    )
    .await
    .map_err(|_| HostError::Handshake {
        path: path.display().to_string(),
        message: "no answer to --describe in 20 s".into(),
    })?
    .map_err(|source| HostError::Spawn {
        path: path.display().to_string(),
        source,
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    check_hello(path, line)
}

/// A live plugin process.
struct Conn {
    stdin: tokio::sync::Mutex<ChildStdin>,
    pending: Mutex<HashMap<u64, mpsc::UnboundedSender<PluginMessage>>>,
    next_id: AtomicU64,
    alive: AtomicBool,
    pid: Option<u32>,
}

impl Conn {
    async fn send(&self, msg: &HostMessage) -> std::io::Result<()> {
        let mut stdin = self.stdin.lock().await;
        stdin.write_all(encode(msg).as_bytes()).await?;
        stdin.flush().await
    }
}

/// Owns one plugin executable's process.
pub struct Supervisor {
    binary: PluginBinary,
    env: Vec<(String, String)>,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    starts: AtomicU32,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("path", &self.binary.path)
            .finish_non_exhaustive()
    }
}

fn crashed(name: &str, detail: String) -> PluginError {
    PluginError::new("plugin_crashed", format!("plugin process `{name}` {detail}"))
        .with_help("the process is started again for the next call; add `retry:` to the step to retry automatically")
}

impl Supervisor {
    /// `env` is added to the plugin process's environment.
    pub fn new(binary: PluginBinary, env: Vec<(String, String)>) -> Arc<Self> {
        Arc::new(Supervisor {
            binary,
            env,
            conn: tokio::sync::Mutex::new(None),
            starts: AtomicU32::new(0),
        })
    }

    pub fn binary(&self) -> &PluginBinary {
        &self.binary
    }

    /// How many times the process was started.
    pub fn starts(&self) -> u32 {
        self.starts.load(Ordering::SeqCst)
    }

    /// The running process's pid, if it runs.
    pub async fn pid(&self) -> Option<u32> {
        let conn = self.conn.lock().await;
        conn.as_ref()
            .filter(|c| c.alive.load(Ordering::SeqCst))
            .and_then(|c| c.pid)
    }

    /// One [`Plugin`] per descriptor, all served by this process.
    pub fn plugins(self: &Arc<Self>) -> Vec<Arc<dyn Plugin>> {
        self.binary
            .descriptors
            .iter()
            .map(|d| {
                Arc::new(ProcessPlugin {
                    descriptor: d.clone(),
                    supervisor: self.clone(),
                }) as Arc<dyn Plugin>
            })
            .collect()
    }

    /// Asks the process to finish and exit.
    pub async fn shutdown(&self) {
        let mut guard = self.conn.lock().await;
        if let Some(conn) = guard.take() {
            let _ = conn.send(&HostMessage::Shutdown).await;
        }
    }

    async fn connection(&self) -> Result<Arc<Conn>, PluginError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref().filter(|c| c.alive.load(Ordering::SeqCst)) {
            return Ok(c.clone());
        }
        let conn = self
            .start()
            .await
            .map_err(|e| PluginError::new("plugin_start", e.to_string()))?;
        *guard = Some(conn.clone());
        Ok(conn)
    }

    async fn start(&self) -> Result<Arc<Conn>, HostError> {
        let path = self.binary.path.display().to_string();
        let mut child: Child = Command::new(&self.binary.path)
            .envs(self.env.iter().cloned())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| HostError::Spawn {
                path: path.clone(),
                source,
            })?;
        self.starts.fetch_add(1, Ordering::SeqCst);
        let handshake = |message: &str| HostError::Handshake {
            path: path.clone(),
            message: message.to_owned(),
        };
        let stdin = child.stdin.take().ok_or_else(|| handshake("no stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| handshake("no stdout"))?;
        let stderr = child.stderr.take().ok_or_else(|| handshake("no stderr"))?;
        let tail: Arc<Mutex<VecDeque<String>>> = Arc::default();
        {
            let tail = tail.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(mut t) = tail.lock() {
                        if t.len() == 20 {
                            t.pop_front();
                        }
                        t.push_back(line);
                    }
                }
            });
        }
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .map_err(|_| handshake("no hello within 60 s"))?
            .map_err(|e| handshake(&e.to_string()))?
            .ok_or_else(|| handshake("it exited before saying hello"))?;
        check_hello(&self.binary.path, &first)?;
        let conn = Arc::new(Conn {
            stdin: tokio::sync::Mutex::new(stdin),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            alive: AtomicBool::new(true),
            pid: child.id(),
        });
        let reader_conn = conn.clone();
        let name = self.binary.name.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(msg) = decode::<PluginMessage>(&line) else {
                    continue;
                };
                let id = match &msg {
                    PluginMessage::Progress { id, .. }
                    | PluginMessage::Log { id, .. }
                    | PluginMessage::Result { id, .. }
                    | PluginMessage::Error { id, .. } => *id,
                    PluginMessage::Hello { .. } => continue,
                };
                let done = matches!(
                    msg,
                    PluginMessage::Result { .. } | PluginMessage::Error { .. }
                );
                if let Ok(mut pending) = reader_conn.pending.lock() {
                    if let Some(tx) = pending.get(&id) {
                        let _ = tx.send(msg);
                    }
                    if done {
                        pending.remove(&id);
                    }
                }
            }
            // stdout closed: the process is gone. Fail whatever was in flight.
            reader_conn.alive.store(false, Ordering::SeqCst);
            let status = child
                .wait()
                .await
                .map(|s| s.to_string())
                .unwrap_or_else(|e| e.to_string());
            let last = tail
                .lock()
                .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
                .unwrap_or_default();
            let detail = if last.is_empty() {
                format!("exited ({status}) during the call")
            } else {
                format!("exited ({status}) during the call; its last output:\n{last}")
            };
            let pending: Vec<_> = reader_conn
                .pending
                .lock()
                .map(|mut p| p.drain().collect())
                .unwrap_or_default();
            for (id, tx) in pending {
                let _ = tx.send(PluginMessage::Error {
                    id,
                    error: crashed(&name, detail.clone()),
                });
            }
        });
        Ok(conn)
    }
}

static SCRATCH_SEQ: AtomicU64 = AtomicU64::new(0);

/// A per-call directory for output artifacts, removed when the call ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// One plugin served by a [`Supervisor`]'s process.
pub struct ProcessPlugin {
    descriptor: Descriptor,
    supervisor: Arc<Supervisor>,
}

fn collect_artifacts(v: &Value, out: &mut Vec<ArtifactRef>) {
    if let Some(a) = ArtifactRef::from_value(v) {
        out.push(a);
        return;
    }
    match v {
        Value::Array(items) => items.iter().for_each(|i| collect_artifacts(i, out)),
        Value::Object(map) => map.values().for_each(|i| collect_artifacts(i, out)),
        _ => {}
    }
}

/// Moves output artifacts the plugin wrote to the scratch dir into the artifact store.
async fn import_outputs(v: &mut Value, scratch: &Path, cx: &RunContext) -> Result<(), PluginError> {
    if let Some(a) = ArtifactRef::from_value(v) {
        let file = scratch.join(&a.sha256);
        if tokio::fs::metadata(&file).await.is_ok() {
            let mut stored = cx.artifacts().put_file(&file, Some(&a.media_type)).await?;
            stored.name = a.name.clone();
            *v = stored.to_value();
        }
        return Ok(());
    }
    match v {
        Value::Array(items) => {
            for i in items {
                Box::pin(import_outputs(i, scratch, cx)).await?;
            }
        }
        Value::Object(map) => {
            for i in map.values_mut() {
                Box::pin(import_outputs(i, scratch, cx)).await?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[async_trait::async_trait]
impl Plugin for ProcessPlugin {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    async fn run(&self, config: Value, cx: &RunContext) -> Result<Value, PluginError> {
        let mut refs = Vec::new();
        collect_artifacts(&config, &mut refs);
        let mut artifacts = BTreeMap::new();
        for a in refs {
            artifacts.insert(a.sha256.clone(), cx.artifact_path(&a).await?);
        }
        // The plugin creates the scratch dir only if it writes an artifact.
        let scratch = Scratch(std::env::temp_dir().join(format!(
            "mediaflow-scratch-{}-{}",
            std::process::id(),
            SCRATCH_SEQ.fetch_add(1, Ordering::Relaxed)
        )));
        let conn = self.supervisor.connection().await?;
        let id = conn.next_id.fetch_add(1, Ordering::SeqCst);
        let (tx, mut rx) = mpsc::unbounded_channel();
        if let Ok(mut p) = conn.pending.lock() {
            p.insert(id, tx);
        }
        let name = &self.supervisor.binary.name;
        if !conn.alive.load(Ordering::SeqCst) {
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
                scratch_dir: scratch.0.as_path().to_path_buf(),
            },
        };
        if let Err(e) = conn.send(&request).await {
            if let Ok(mut p) = conn.pending.lock() {
                p.remove(&id);
            }
            return Err(crashed(name, format!("cannot be written to: {e}")));
        }
        let mut cancel_sent = false;
        loop {
            let msg = tokio::select! {
                m = rx.recv() => m,
                _ = cx.cancelled(), if !cancel_sent => {
                    cancel_sent = true;
                    let _ = conn.send(&HostMessage::Cancel { id }).await;
                    continue;
                }
            };
            match msg {
                Some(PluginMessage::Progress {
                    fraction, message, ..
                }) => cx.progress(fraction, message.as_deref()),
                Some(PluginMessage::Log { level, message, .. }) => cx.log(level, &message),
                Some(PluginMessage::Result { mut outputs, .. }) => {
                    import_outputs(&mut outputs, scratch.0.as_path(), cx).await?;
                    return Ok(outputs);
                }
                Some(PluginMessage::Error { error, .. }) => return Err(error),
                Some(PluginMessage::Hello { .. }) => {}
                None => return Err(crashed(name, "closed the call".into())),
            }
        }
    }
}

//! One plugin executable's process: started on demand, handshake, multiplexed calls,
//! started again after it dies.

use std::collections::{HashMap, VecDeque};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mediaflow_plugin_api::{Plugin, PluginError};
use mediaflow_protocol::{
    decode, encode, read_line, HostMessage, Line, PluginMessage, MAX_LINE, PROTOCOL_VERSION,
};
use tokio::io::{AsyncBufRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::discover::{check_hello, host_name, scrubbed_env, PluginBinary};
use crate::plugin::ProcessPlugin;
use crate::{io, HostError};

/// Lines of a plugin's stderr kept for crash reports, and the longest kept line.
const STDERR_TAIL: usize = 20;
const STDERR_LINE: usize = 4096;
/// How long a starting plugin has to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(60);
/// After a crash or failed start, the next start waits this long, doubling per failure
/// in a row, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A live plugin process.
pub(crate) struct Conn {
    /// The process's stdin: written straight from a caller's task, or by the queue's
    /// writer for messages sent where nothing can await (a dropped call's `Cancel`).
    stdin: Arc<tokio::sync::Mutex<ChildStdin>>,
    out: mpsc::UnboundedSender<HostMessage>,
    pending: Mutex<HashMap<u64, mpsc::UnboundedSender<PluginMessage>>>,
    next_id: AtomicU64,
    alive: AtomicBool,
    pid: Option<u32>,
    /// A private (0700) directory whose children are the calls' scratch dirs.
    pub(crate) scratch_root: tempfile::TempDir,
    /// The last lines the process wrote to stderr.
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Conn {
    /// Queues a message for the process (in order).
    pub(crate) fn send(&self, msg: HostMessage) -> bool {
        self.out.send(msg).is_ok()
    }

    /// Writes a message now, from the caller's task: no trip through the I/O thread.
    pub(crate) async fn write(&self, msg: &HostMessage) -> bool {
        write_line(&self.stdin, &encode(msg)).await
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// The process said it cannot serve any more and is exiting: no new call goes to it.
    pub(crate) fn mark_broken(&self) {
        self.alive.store(false, Ordering::SeqCst);
    }

    /// Registers a call; its messages arrive on the returned receiver.
    pub(crate) fn open_call(&self) -> (u64, mpsc::UnboundedReceiver<PluginMessage>) {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id, tx);
        }
        (id, rx)
    }

    pub(crate) fn close_call(&self, id: u64) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&id);
        }
    }
}

/// Owns one plugin executable's process.
pub struct Supervisor {
    pub(crate) binary: PluginBinary,
    env: Vec<(String, String)>,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    starts: AtomicU32,
    /// Failed starts and crashes in a row, and when the last one happened.
    failures: Mutex<(u32, Option<Instant>)>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("path", &self.binary.path)
            .finish_non_exhaustive()
    }
}

pub(crate) fn crashed(name: &str, detail: String) -> PluginError {
    PluginError::new("plugin_crashed", format!("plugin process `{name}` {detail}"))
        .retryable()
        .with_help("the process is started again for the next call; add `retry:` to the step to retry automatically")
}

impl Supervisor {
    /// `env` is added to the plugin process's (otherwise scrubbed) environment.
    pub fn new(binary: PluginBinary, env: Vec<(String, String)>) -> Arc<Self> {
        Arc::new(Supervisor {
            binary,
            env,
            conn: tokio::sync::Mutex::new(None),
            starts: AtomicU32::new(0),
            failures: Mutex::new((0, None)),
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
        conn.as_ref().filter(|c| c.is_alive()).and_then(|c| c.pid)
    }

    /// The last lines the running (or last) process wrote to stderr, oldest first: what
    /// a crash message quotes, and where a plugin process reports calls it stopped.
    pub async fn stderr_tail(&self) -> Vec<String> {
        let conn = self.conn.lock().await;
        conn.as_ref()
            .and_then(|c| c.tail.lock().ok().map(|t| t.iter().cloned().collect()))
            .unwrap_or_default()
    }

    /// One [`Plugin`] per descriptor, all served by this process.
    pub fn plugins(self: &Arc<Self>) -> Vec<Arc<dyn Plugin>> {
        self.binary
            .descriptors
            .iter()
            .map(|d| Arc::new(ProcessPlugin::new(d.clone(), self.clone())) as Arc<dyn Plugin>)
            .collect()
    }

    /// Asks the process to finish its calls and exit.
    pub async fn shutdown(&self) {
        let mut guard = self.conn.lock().await;
        if let Some(conn) = guard.take() {
            conn.send(HostMessage::Shutdown);
        }
    }

    /// The live connection, starting the process (on the I/O runtime) if needed.
    pub(crate) async fn connection(self: &Arc<Self>) -> Result<Arc<Conn>, PluginError> {
        // The common case, a live process, needs no trip to the I/O thread.
        if let Ok(guard) = self.conn.try_lock() {
            if let Some(c) = guard.as_ref().filter(|c| c.is_alive()) {
                return Ok(c.clone());
            }
        }
        let this = self.clone();
        io::run(async move { this.connect().await })
            .await
            .unwrap_or_else(|| {
                Err(PluginError::new(
                    "plugin_start",
                    "the plugin I/O thread is gone",
                ))
            })
    }

    async fn connect(self: Arc<Self>) -> Result<Arc<Conn>, PluginError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref().filter(|c| c.is_alive()) {
            return Ok(c.clone());
        }
        self.wait_backoff().await;
        match self.start().await {
            Ok(conn) => {
                *guard = Some(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                self.failed();
                Err(PluginError::new("plugin_start", e.to_string()).retryable())
            }
        }
    }

    /// After failures in a row, waits before starting again (a plugin that crashes at
    /// once must not be restarted in a tight loop).
    async fn wait_backoff(&self) {
        let (n, last) = self.failures.lock().map(|f| *f).unwrap_or((0, None));
        let Some(last) = last.filter(|_| n > 0) else {
            return;
        };
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << (n - 1).min(8))
            .min(MAX_BACKOFF);
        let since = last.elapsed();
        if since < backoff {
            tokio::time::sleep(backoff - since).await;
        }
    }

    fn failed(&self) {
        if let Ok(mut f) = self.failures.lock() {
            *f = (f.0 + 1, Some(Instant::now()));
        }
    }

    fn succeeded(&self) {
        if let Ok(mut f) = self.failures.lock() {
            *f = (0, None);
        }
    }

    async fn start(self: &Arc<Self>) -> Result<Arc<Conn>, HostError> {
        let path = self.binary.path.display().to_string();
        let handshake = |message: String| HostError::Handshake {
            path: path.clone(),
            message,
        };
        let scratch_root = tempfile::Builder::new()
            .prefix("mediaflow-scratch-")
            .tempdir()
            .map_err(|e| handshake(format!("cannot make a scratch directory: {e}")))?;
        let mut cmd = Command::new(&self.binary.path);
        scrubbed_env(&mut cmd, &self.env);
        let mut child: Child = cmd
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
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| handshake("no stdin".into()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| handshake("no stdout".into()))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| handshake("no stderr".into()))?;
        let tail: Arc<Mutex<VecDeque<String>>> = Arc::default();
        tokio::spawn(keep_tail(BufReader::new(stderr), tail.clone()));
        let mut stdout = BufReader::new(stdout);
        let hello = next_line(&mut stdout, "say hello")
            .await
            .map_err(&handshake)?;
        check_hello(&self.binary.path, &hello)?;
        let ours = HostMessage::Hello {
            protocol: PROTOCOL_VERSION,
            host: host_name(),
        };
        let answer = async {
            stdin.write_all(encode(&ours).as_bytes()).await.ok()?;
            stdin.flush().await.ok()?;
            Some(())
        };
        if answer.await.is_none() {
            return Err(handshake(format!(
                "it exited during the handshake{}",
                quote(&tail)
            )));
        }
        let reply = next_line(&mut stdout, "answer the host's hello")
            .await
            .map_err(|m| handshake(format!("{m}{}", quote(&tail))))?;
        match decode::<PluginMessage>(&reply) {
            Ok(PluginMessage::Ready) => {}
            Ok(PluginMessage::Refused { message }) => return Err(handshake(message)),
            Ok(other) => return Err(handshake(format!("expected ready, got {other:?}"))),
            Err(e) => return Err(handshake(e.to_string())),
        }
        let (out, mut queue) = mpsc::unbounded_channel::<HostMessage>();
        let stdin = Arc::new(tokio::sync::Mutex::new(stdin));
        let conn = Arc::new(Conn {
            stdin: stdin.clone(),
            out,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            alive: AtomicBool::new(true),
            pid: child.id(),
            scratch_root,
            tail: tail.clone(),
        });
        tokio::spawn(async move {
            while let Some(msg) = queue.recv().await {
                if !write_line(&stdin, &encode(&msg)).await {
                    break;
                }
            }
        });
        tokio::spawn(read_messages(
            self.clone(),
            conn.clone(),
            stdout,
            child,
            tail,
        ));
        Ok(conn)
    }
}

/// Writes one encoded line to a plugin's stdin; false once the pipe is closed.
async fn write_line(stdin: &tokio::sync::Mutex<ChildStdin>, line: &str) -> bool {
    let mut stdin = stdin.lock().await;
    stdin.write_all(line.as_bytes()).await.is_ok() && stdin.flush().await.is_ok()
}

async fn next_line<R: AsyncBufRead + Unpin>(r: &mut R, what: &str) -> Result<String, String> {
    match tokio::time::timeout(HELLO_TIMEOUT, read_line(r, MAX_LINE)).await {
        Err(_) => Err(format!(
            "it did not {what} within {} s",
            HELLO_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(Line::Eof)) => Err(format!("it exited before it could {what}")),
        Ok(Ok(Line::TooLong { bytes })) => Err(format!("it sent a {bytes}-byte line")),
        Ok(Ok(Line::Text(line))) => Ok(line),
    }
}

/// Keeps the last lines of a plugin's stderr (each cut to a bounded length).
async fn keep_tail<R: AsyncBufRead + Unpin>(mut stderr: R, tail: Arc<Mutex<VecDeque<String>>>) {
    loop {
        let line = match read_line(&mut stderr, STDERR_LINE).await {
            Ok(Line::Text(l)) => l,
            Ok(Line::TooLong { bytes }) => format!("[a {bytes}-byte line]"),
            Ok(Line::Eof) | Err(_) => return,
        };
        if let Ok(mut t) = tail.lock() {
            if t.len() == STDERR_TAIL {
                t.pop_front();
            }
            t.push_back(line);
        }
    }
}

fn quote(tail: &Mutex<VecDeque<String>>) -> String {
    let last = tail
        .lock()
        .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
        .unwrap_or_default();
    if last.is_empty() {
        String::new()
    } else {
        format!("; its last output:\n{last}")
    }
}

/// Routes the process's messages to their calls; when stdout closes, fails what is in
/// flight.
async fn read_messages(
    sup: Arc<Supervisor>,
    conn: Arc<Conn>,
    mut stdout: BufReader<tokio::process::ChildStdout>,
    mut child: Child,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let name = sup.binary.name.clone();
    let mut served = false;
    loop {
        let line = match read_line(&mut stdout, MAX_LINE).await {
            Ok(Line::Text(l)) => l,
            Ok(Line::TooLong { .. }) => continue,
            Ok(Line::Eof) | Err(_) => break,
        };
        let Ok(msg) = decode::<PluginMessage>(&line) else {
            continue;
        };
        let Some(id) = msg.call_id() else { continue };
        if !served && msg.is_final() {
            served = true;
            sup.succeeded();
        }
        let done = msg.is_final();
        if let Ok(mut pending) = conn.pending.lock() {
            if let Some(tx) = pending.get(&id) {
                let _ = tx.send(msg);
            }
            if done {
                pending.remove(&id);
            }
        }
    }
    // stdout closed: the process is gone. Fail whatever was in flight.
    conn.alive.store(false, Ordering::SeqCst);
    let status = child
        .wait()
        .await
        .map(|s| s.to_string())
        .unwrap_or_else(|e| e.to_string());
    let pending: Vec<_> = conn
        .pending
        .lock()
        .map(|mut p| p.drain().collect())
        .unwrap_or_default();
    if !pending.is_empty() || !status.contains("exit status: 0") {
        sup.failed();
    }
    let detail = format!("exited ({status}) during the call{}", quote(&tail));
    for (id, tx) in pending {
        let _ = tx.send(PluginMessage::Error {
            id,
            error: crashed(&name, detail.clone()),
        });
    }
}

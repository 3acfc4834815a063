//! The plugin side: read requests from stdin, run plugins, write answers to stdout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mediaflow_plugin_api::{
    ArtifactRef, Artifacts, EventSink, LogLevel, Plugin, PluginError, RunContext,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::host_calls::{HostCalls, HostVectors, Pending};
use crate::{
    decode, encode, read_line, CallContext, HostMessage, Line, PluginMessage, ProtocolError,
    MAX_LINE, PROTOCOL_VERSION,
};

struct Sink {
    id: u64,
    out: mpsc::UnboundedSender<PluginMessage>,
}

impl EventSink for Sink {
    fn progress(&self, fraction: f32, message: Option<&str>) {
        let _ = self.out.send(PluginMessage::Progress {
            id: self.id,
            fraction,
            message: message.map(str::to_owned),
        });
    }

    fn log(&self, level: LogLevel, message: &str) {
        let _ = self.out.send(PluginMessage::Log {
            id: self.id,
            level,
            message: message.to_owned(),
        });
    }
}

/// Artifacts as a plugin process sees them: inputs by path, outputs into the scratch dir.
struct CallArtifacts {
    inputs: std::collections::BTreeMap<String, PathBuf>,
    /// A path the host reserved (inside a private directory of its own); created here,
    /// 0700, on the first output, and refused if something is already there.
    scratch: PathBuf,
    created: tokio::sync::OnceCell<()>,
}

impl CallArtifacts {
    async fn scratch_dir(&self) -> Result<&Path, PluginError> {
        self.created
            .get_or_try_init(|| async {
                let mut dir = tokio::fs::DirBuilder::new();
                #[cfg(unix)]
                dir.mode(0o700);
                dir.create(&self.scratch).await.map_err(|e| {
                    io_err(&self.scratch, e).with_help(
                        "the scratch directory must not exist before the call; the host makes a fresh one per call",
                    )
                })
            })
            .await?;
        Ok(&self.scratch)
    }
}

fn io_err(path: &Path, e: std::io::Error) -> PluginError {
    PluginError::new("io", format!("{}: {e}", path.display())).retryable()
}

#[async_trait::async_trait]
impl Artifacts for CallArtifacts {
    async fn put_bytes(
        &self,
        bytes: &[u8],
        media_type: &str,
        name: Option<&str>,
    ) -> Result<ArtifactRef, PluginError> {
        let sha = hex::encode(Sha256::digest(bytes));
        let path = self.scratch_dir().await?.join(&sha);
        tokio::fs::write(&path, bytes)
            .await
            .map_err(|e| io_err(&path, e))?;
        Ok(ArtifactRef {
            sha256: sha,
            media_type: media_type.to_owned(),
            size: bytes.len() as u64,
            name: name.map(str::to_owned),
        })
    }

    async fn put_file(
        &self,
        path: &Path,
        media_type: Option<&str>,
    ) -> Result<ArtifactRef, PluginError> {
        let bytes = tokio::fs::read(path).await.map_err(|e| io_err(path, e))?;
        let name = path.file_name().and_then(|n| n.to_str());
        self.put_bytes(
            &bytes,
            media_type.unwrap_or("application/octet-stream"),
            name,
        )
        .await
    }

    async fn path(&self, artifact: &ArtifactRef) -> Result<PathBuf, PluginError> {
        self.inputs.get(&artifact.sha256).cloned().ok_or_else(|| {
            PluginError::new(
                "missing_artifact",
                format!("artifact {} was not passed to this plugin", artifact.sha256),
            )
        })
    }
}

/// Serves `plugins` on stdin/stdout until the host says `shutdown` or stdin closes.
/// Handles `--describe` (print the hello line and exit). Call it from `main`.
pub async fn serve(name: &str, version: &str, plugins: Vec<Arc<dyn Plugin>>) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    serve_with_args(name, version, plugins, &args).await
}

/// How long the writer may take, after the last call, to write what is queued.
const WRITER_GRACE: Duration = Duration::from_secs(2);

/// How long in-flight calls get to stop after the host has gone.
const ORPHAN_GRACE: Duration = Duration::from_secs(5);

pub async fn serve_with_args(
    name: &str,
    version: &str,
    plugins: Vec<Arc<dyn Plugin>>,
    args: &[String],
) {
    let hello = PluginMessage::Hello {
        protocol: PROTOCOL_VERSION,
        name: name.to_owned(),
        version: version.to_owned(),
        plugins: plugins.iter().map(|p| p.descriptor().clone()).collect(),
    };
    let mut stdout = tokio::io::stdout();
    if args.iter().any(|a| a == "--describe") {
        let _ = stdout.write_all(encode(&hello).as_bytes()).await;
        let _ = stdout.flush().await;
        return;
    }
    if args.iter().any(|a| a == "--help" || a == "-h") {
        eprintln!("{name} {version}: a mediaflow plugin process. mediaflow starts it; it speaks JSON lines on stdin/stdout (protocol {PROTOCOL_VERSION}). `--describe` prints its plugins.");
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<PluginMessage>();
    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if stdout.write_all(encode(&msg).as_bytes()).await.is_err() {
                break;
            }
            let _ = stdout.flush().await;
        }
    });
    let _ = tx.send(hello);
    let mut stdin = BufReader::new(tokio::io::stdin());
    if let Err(message) = handshake(name, version, &mut stdin).await {
        eprintln!("{name}: {message}");
        let _ = tx.send(PluginMessage::Refused { message });
        drop(tx);
        let _ = writer.await;
        return;
    }
    let _ = tx.send(PluginMessage::Ready);
    let by_name: HashMap<String, Arc<dyn Plugin>> = plugins
        .into_iter()
        .map(|p| (p.descriptor().name.clone(), p))
        .collect();
    let running: Arc<Mutex<HashMap<u64, CancellationToken>>> = Arc::default();
    let host_calls: Arc<Pending> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    // Cancelled when a call finds the process broken: it stops serving and exits.
    let broken = CancellationToken::new();
    let host_gone = loop {
        let read = tokio::select! {
            read = read_line(&mut stdin, MAX_LINE) => read,
            _ = broken.cancelled() => {
                eprintln!("{name}: a call found this process broken; exiting so the host starts a fresh one");
                break true;
            }
        };
        let line = match read {
            Ok(Line::Text(line)) => line,
            Ok(Line::TooLong { bytes }) => {
                eprintln!("{name}: ignored a {bytes}-byte line from the host");
                continue;
            }
            Ok(Line::Eof) | Err(_) => break true,
        };
        if line.trim().is_empty() {
            continue;
        }
        let msg: HostMessage = match decode(&line) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("{name}: {e}");
                continue;
            }
        };
        let plugin = |plugin: &str, id: u64| {
            by_name
                .get(plugin)
                .cloned()
                .ok_or_else(|| PluginMessage::Error {
                    id,
                    error: PluginError::new(
                        "unknown_plugin",
                        format!("{name} has no plugin `{plugin}`"),
                    ),
                })
        };
        match msg {
            HostMessage::Shutdown => break false,
            HostMessage::Hello { .. } => {}
            HostMessage::HostReply { call, result } => host_calls.answer(call, result),
            HostMessage::Cancel { id } => {
                if let Some(t) = running.lock().ok().and_then(|r| r.get(&id).cloned()) {
                    t.cancel();
                }
            }
            HostMessage::Validate {
                id,
                plugin: p,
                config,
            } => {
                let reply = match plugin(&p, id) {
                    Ok(p) => PluginMessage::Validated {
                        id,
                        issues: p.validate(&config).err().unwrap_or_default(),
                    },
                    Err(e) => e,
                };
                let _ = tx.send(reply);
            }
            HostMessage::Run {
                id,
                plugin: p,
                config,
                context,
            } => {
                let p = match plugin(&p, id) {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(e);
                        continue;
                    }
                };
                let token = CancellationToken::new();
                if let Ok(mut r) = running.lock() {
                    r.insert(id, token.clone());
                }
                let tx = tx.clone();
                let running = running.clone();
                let broken = broken.clone();
                let host_calls = host_calls.clone();
                let who = name.to_owned();
                tasks.spawn(async move {
                    let reply = run_one(id, p, config, context, token, tx.clone(), host_calls).await;
                    if let Ok(mut r) = running.lock() {
                        r.remove(&id);
                    }
                    let is_broken = matches!(&reply, PluginMessage::Error { error, .. } if error.code == crate::PLUGIN_BROKEN);
                    if let PluginMessage::Error { error, .. } = &reply {
                        if error.code == "cancelled" {
                            // The host has usually dropped the call: stderr is where an
                            // operator (and `Supervisor::stderr_tail`) sees it stopped.
                            eprintln!("{who}: call {id} stopped: {}", error.message);
                        }
                    }
                    let _ = tx.send(reply);
                    if is_broken {
                        broken.cancel();
                    }
                });
            }
        }
    };
    if host_gone {
        // Nobody will read the answers: stop the work instead of finishing it.
        if let Ok(r) = running.lock() {
            r.values().for_each(CancellationToken::cancel);
        }
        let _ = tokio::time::timeout(ORPHAN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
    } else {
        while tasks.join_next().await.is_some() {}
    }
    drop(tx);
    // The writer ends when every sender is gone, but a plugin may keep one alive for good
    // (a progress callback that a C library never frees holds a call's context): write
    // what is queued, then stop waiting, so the process exits when its host is gone.
    let _ = tokio::time::timeout(WRITER_GRACE, writer).await;
}

/// Reads the host's hello and checks its version; the error says why the plugin refuses.
async fn handshake<R: tokio::io::AsyncBufRead + Unpin>(
    name: &str,
    version: &str,
    stdin: &mut R,
) -> Result<(), String> {
    let expected = format!("the host's hello (protocol {PROTOCOL_VERSION})");
    let line = match read_line(stdin, MAX_LINE).await {
        Ok(Line::Text(line)) => line,
        Ok(_) | Err(_) => return Err(format!("the host closed stdin before {expected}")),
    };
    match decode::<HostMessage>(&line) {
        Ok(HostMessage::Hello { protocol, .. }) if protocol == PROTOCOL_VERSION => Ok(()),
        Ok(HostMessage::Hello { protocol, host }) => Err(ProtocolError::Version {
            plugin: format!("{name} {version}"),
            plugin_protocol: PROTOCOL_VERSION,
            host,
            host_protocol: protocol,
        }
        .to_string()),
        Ok(_) | Err(_) => Err(format!(
            "expected {expected} as the first line; the host may speak an older protocol: use a mediaflow that speaks plugin protocol {PROTOCOL_VERSION}"
        )),
    }
}
async fn run_one(
    id: u64,
    plugin: Arc<dyn Plugin>,
    config: mediaflow_plugin_api::Value,
    context: CallContext,
    token: CancellationToken,
    tx: mpsc::UnboundedSender<PluginMessage>,
    pending: Arc<Pending>,
) -> PluginMessage {
    let CallContext {
        run_id,
        step_id,
        item_index,
        attempt,
        artifacts,
        scratch_dir,
    } = context;
    let calls = Arc::new(HostCalls {
        id,
        out: tx.clone(),
        pending,
    });
    let cx = RunContext::new(
        run_id,
        step_id,
        item_index,
        attempt,
        token,
        Arc::new(Sink { id, out: tx }),
        Arc::new(CallArtifacts {
            inputs: artifacts,
            scratch: scratch_dir,
            created: tokio::sync::OnceCell::new(),
        }),
    )
    .with_llm(Some(calls.clone()));
    let vectors = HostVectors {
        calls,
        cx: cx.clone(),
    };
    let cx = cx.with_vectors(Some(Arc::new(vectors)));
    // A panic in one call becomes that call's error; the process keeps serving.
    let handle = tokio::spawn(async move { plugin.run(config, &cx).await });
    match handle.await {
        Ok(Ok(outputs)) => PluginMessage::Result { id, outputs },
        Ok(Err(error)) => PluginMessage::Error { id, error },
        Err(e) => PluginMessage::Error {
            id,
            error: match e.try_into_panic() {
                Ok(payload) => PluginError::from_panic(payload.as_ref()),
                Err(e) => {
                    PluginError::new("aborted", format!("the call was aborted: {e}")).retryable()
                }
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(scratch: PathBuf) -> CallArtifacts {
        CallArtifacts {
            inputs: Default::default(),
            scratch,
            created: tokio::sync::OnceCell::new(),
        }
    }

    #[tokio::test]
    async fn the_scratch_dir_is_private_and_made_by_the_call() {
        let root = tempfile::tempdir().unwrap();
        let scratch = root.path().join("call-1");
        let a = call(scratch.clone())
            .put_bytes(b"story", "text/plain", None)
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(scratch.join(&a.sha256)).unwrap(),
            b"story".to_vec()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&scratch).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{mode:o}");
        }
    }

    #[tokio::test]
    async fn a_scratch_dir_that_already_exists_is_refused() {
        // Someone made the path first (to read or plant outputs): the call refuses it.
        let root = tempfile::tempdir().unwrap();
        let planted = root.path().join("call-1");
        std::fs::create_dir(&planted).unwrap();
        let e = call(planted.clone())
            .put_bytes(b"story", "text/plain", None)
            .await
            .unwrap_err();
        assert_eq!(e.code, "io", "{e:?}");
        assert!(e.message.contains("call-1"), "{}", e.message);
        assert_eq!(std::fs::read_dir(&planted).unwrap().count(), 0);
    }
}

//! The plugin side: read requests from stdin, run plugins, write answers to stdout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mediaflow_plugin_api::{
    ArtifactRef, Artifacts, EventSink, LogLevel, Plugin, PluginError, RunContext,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{decode, encode, CallContext, HostMessage, PluginMessage, PROTOCOL_VERSION};

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
    scratch: PathBuf,
}

fn io_err(path: &Path, e: std::io::Error) -> PluginError {
    PluginError::new("io", format!("{}: {e}", path.display()))
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
        tokio::fs::create_dir_all(&self.scratch)
            .await
            .map_err(|e| io_err(&self.scratch, e))?;
        let path = self.scratch.join(&sha);
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
            PluginError::fatal(
                "missing_artifact",
                format!("artifact {} was not passed to this plugin", artifact.sha256),
            )
        })
    }
}

/// Serves `plugins` on stdin/stdout until stdin closes or the host says `shutdown`.
/// Handles `--describe` (print the hello line and exit). Call it from `main`.
pub async fn serve(name: &str, version: &str, plugins: Vec<Arc<dyn Plugin>>) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    serve_with_args(name, version, plugins, &args).await
}

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
    let by_name: HashMap<String, Arc<dyn Plugin>> = plugins
        .into_iter()
        .map(|p| (p.descriptor().name.clone(), p))
        .collect();
    let running: Arc<Mutex<HashMap<u64, CancellationToken>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
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
        match msg {
            HostMessage::Shutdown => break,
            HostMessage::Cancel { id } => {
                if let Some(t) = running.lock().ok().and_then(|r| r.get(&id).cloned()) {
                    t.cancel();
                }
            }
            HostMessage::Run {
                id,
                plugin,
                config,
                context,
            } => {
                let Some(p) = by_name.get(&plugin).cloned() else {
                    let _ = tx.send(PluginMessage::Error {
                        id,
                        error: PluginError::fatal(
                            "unknown_plugin",
                            format!("{name} has no plugin `{plugin}`"),
                        ),
                    });
                    continue;
                };
                let token = CancellationToken::new();
                if let Ok(mut r) = running.lock() {
                    r.insert(id, token.clone());
                }
                let tx = tx.clone();
                let running = running.clone();
                tasks.spawn(async move {
                    let reply = run_one(id, p, config, context, token, tx.clone()).await;
                    if let Ok(mut r) = running.lock() {
                        r.remove(&id);
                    }
                    let _ = tx.send(reply);
                });
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    drop(tx);
    let _ = writer.await;
}

async fn run_one(
    id: u64,
    plugin: Arc<dyn Plugin>,
    config: mediaflow_plugin_api::Value,
    context: CallContext,
    token: CancellationToken,
    tx: mpsc::UnboundedSender<PluginMessage>,
) -> PluginMessage {
    let CallContext {
        run_id,
        step_id,
        item_index,
        attempt,
        artifacts,
        scratch_dir,
    } = context;
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
        }),
    );
    // A panic in one call becomes that call's error; the process keeps serving.
    let handle = tokio::spawn(async move { plugin.run(config, &cx).await });
    match handle.await {
        Ok(Ok(outputs)) => PluginMessage::Result { id, outputs },
        Ok(Err(error)) => PluginMessage::Error { id, error },
        Err(e) => PluginMessage::Error {
            id,
            error: match e.try_into_panic() {
                Ok(payload) => PluginError::from_panic(payload.as_ref()),
                Err(e) => PluginError::new("aborted", format!("the call was aborted: {e}")),
            },
        },
    }
}

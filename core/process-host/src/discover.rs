//! Finding plugin executables and asking them what they offer.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use mediaflow_plugin_api::Descriptor;
use mediaflow_protocol::{decode, PluginMessage, ProtocolError, PROTOCOL_VERSION};
use tokio::process::Command;

use crate::HostError;

/// A plugin executable and what it offers.
#[derive(Clone, Debug)]
pub struct PluginBinary {
    pub path: PathBuf,
    pub name: String,
    pub version: String,
    pub descriptors: Vec<Descriptor>,
}

/// Where plugin executables are looked for, in order: beside the running `mediaflow`,
/// then each directory of `MEDIAFLOW_PLUGINS_DIR` (`:`-separated). `PATH` is searched
/// only when `MEDIAFLOW_PLUGINS_FROM_PATH=1`: running every `mediaflow-*` found there is
/// not something to do by default.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    {
        dirs.push(dir);
    }
    if let Some(v) = std::env::var_os("MEDIAFLOW_PLUGINS_DIR") {
        dirs.extend(std::env::split_paths(&v));
    }
    if std::env::var_os("MEDIAFLOW_PLUGINS_FROM_PATH").is_some_and(|v| v == "1") {
        if let Some(v) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&v));
        }
    }
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.canonicalize().unwrap_or_else(|_| d.clone())));
    dirs
}

/// Executables named `mediaflow-*` in `dirs`, in search order (and by name within a
/// directory). Two files of one name in different directories are both returned: the
/// caller refuses the second plugin of a name, naming both files.
pub fn discover(dirs: &[PathBuf]) -> Vec<PathBuf> {
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
            if name.starts_with("mediaflow-") && !name.contains('.') && is_executable(&path) {
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

/// The host as it names itself in the handshake.
pub(crate) fn host_name() -> String {
    format!("mediaflow {}", env!("CARGO_PKG_VERSION"))
}

/// Checks a plugin's hello line: it must be a hello in this host's protocol.
pub(crate) fn check_hello(path: &Path, line: &str) -> Result<PluginBinary, HostError> {
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
                return Err(bad(ProtocolError::Version {
                    plugin: format!("{name} {version}"),
                    plugin_protocol: protocol,
                    host: host_name(),
                    host_protocol: PROTOCOL_VERSION,
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

/// The environment a plugin process gets: only what it needs to run (no database URL,
/// no tokens), plus `extra`.
pub(crate) fn scrubbed_env(cmd: &mut Command, extra: &[(String, String)]) {
    cmd.env_clear();
    for key in [
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "TMPDIR",
        "RUST_BACKTRACE",
        "RUST_LOG",
    ] {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    for (key, value) in std::env::vars_os() {
        let Some(k) = key.to_str() else { continue };
        // The plugin's own settings (MEDIAFLOW_LLM_MEMORY_MB, MEDIAFLOW_ASR_…), never the
        // host's database or credentials.
        let plugin_setting = k.starts_with("MEDIAFLOW_")
            && !matches!(k, "MEDIAFLOW_DATABASE_URL" | "MEDIAFLOW_TEST_POSTGRES_URL")
            && !k.contains("TOKEN")
            && !k.contains("PASSWORD")
            && !k.contains("SECRET");
        if plugin_setting {
            cmd.env(&key, value);
        }
    }
    cmd.envs(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
}

/// Asks an executable what it offers (`--describe`), without starting it for real.
pub async fn describe(path: &Path) -> Result<PluginBinary, HostError> {
    let mut cmd = Command::new(path);
    cmd.arg("--describe")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    scrubbed_env(&mut cmd, &[]);
    let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
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

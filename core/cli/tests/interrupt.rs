//! Ctrl-C, for real: SIGINT sent to a running `mediaflow run`. The first cancels the run
//! (steps are told to stop, the run is recorded `cancelled`); a second one quits at once,
//! leaving the run for `mediaflow resume`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::bin;
use mediaflow_store::{RunFilter, RunStatus, StepStatus, Store};

/// `testplugin-proc` (built with the workspace) as a plugin named like one `mediaflow`
/// discovers; it offers `proc.echo`, which can sleep through a cancel.
fn plugin_dir(dir: &Path) -> PathBuf {
    let exe = common::built_beside("testplugin-proc");
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::os::unix::fs::symlink(&exe, plugins.join("mediaflow-testproc")).unwrap();
    plugins
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Starts `mediaflow run FLOW` in `dir` and waits until step `slow` is running.
#[allow(clippy::zombie_processes)] // the caller waits for the child it gets back
fn start(dir: &Path, flow: &str) -> (Child, Store, String) {
    let file = dir.join("flow.yaml");
    std::fs::write(&file, flow).unwrap();
    let data = dir.join("data");
    let mut child = bin()
        .env("MEDIAFLOW_PLUGINS_DIR", plugin_dir(dir))
        .arg("--data-dir")
        .arg(&data)
        .arg("run")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rt = rt();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the run never reached `slow`");
        }
        std::thread::sleep(Duration::from_millis(50));
        let db = data.join("mediaflow.db");
        if !db.exists() {
            continue;
        }
        let found = rt.block_on(async {
            let store = Store::open_sqlite(&db).await.ok()?;
            let run = store.list_runs(&RunFilter::default()).await.ok()?.pop()?;
            let steps = store.steps(&run.id).await.ok()?;
            steps
                .iter()
                .any(|s| s.step_id == "slow" && s.status == StepStatus::Running)
                .then_some((store, run.id))
        });
        if let Some((store, id)) = found {
            return (child, store, id);
        }
    }
}

fn sigint(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the process to end (a minute at most) and returns its exit code and stderr.
fn wait(mut child: Child) -> (i32, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "mediaflow did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// While `mediaflow run` drives a run, `mediaflow resume` of it is refused (its owner is
/// alive); then Ctrl-C cancels the run.
#[test]
fn a_live_run_refuses_resume_and_ctrl_c_cancels_it() {
    let dir = tempfile::tempdir().unwrap();
    let flow = r#"
name: interrupted
steps:
  slow: { uses: proc.echo, with: { ms: 60000 } }
  later: { uses: core.delay, needs: [slow], with: { duration: 1s } }
"#;
    let (child, store, run_id) = start(dir.path(), flow);
    let (code, _, refusal) = common::run(
        bin()
            .env("MEDIAFLOW_PLUGINS_DIR", dir.path().join("plugins"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["resume", &run_id]),
    );
    assert_eq!(code, 1, "{refusal}");
    // The refusal names the owner: this host and the running process's pid.
    assert!(
        refusal.contains(&format!("run `{run_id}` is still running in process "))
            && refusal.contains(&format!(":{} (last heartbeat", child.id())),
        "{refusal}"
    );
    sigint(&child);
    let (code, err) = wait(child);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cancelling: running steps are told to stop"),
        "{err}"
    );
    assert!(err.contains(&format!("run {run_id} cancelled")), "{err}");
    let rt = rt();
    let run = rt.block_on(store.get_run(&run_id)).unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    let steps = rt.block_on(store.steps(&run_id)).unwrap();
    let status = |id: &str| steps.iter().find(|s| s.step_id == id).map(|s| s.status);
    assert_eq!(status("slow"), Some(StepStatus::Cancelled));
    assert_eq!(status("later"), Some(StepStatus::Cancelled));
    // The plugin process itself saw the cancel (it logs when it does).
    let logs = rt.block_on(store.logs(&run_id)).unwrap();
    assert!(
        logs.iter()
            .any(|l| l.step_id == "slow" && l.message.starts_with("saw the cancel")),
        "{logs:?}"
    );
}

/// A step that ignores the cancel would hold the run for its grace period; a second
/// Ctrl-C quits at once with status 130 and leaves the run resumable.
#[test]
fn a_second_ctrl_c_quits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let flow = r#"
name: stuck
steps:
  slow: { uses: proc.echo, with: { ms: 60000, ignore_cancel: true } }
"#;
    let (child, store, run_id) = start(dir.path(), flow);
    sigint(&child);
    // The first Ctrl-C is being handled (the step is told to stop and ignores it).
    std::thread::sleep(Duration::from_millis(500));
    sigint(&child);
    let (code, err) = wait(child);
    assert_eq!(code, 130, "{err}");
    assert!(err.contains("Ctrl-C again to quit at once"), "{err}");
    let run = rt().block_on(store.get_run(&run_id)).unwrap();
    assert_eq!(
        run.status,
        RunStatus::Running,
        "left for `mediaflow resume`"
    );
}

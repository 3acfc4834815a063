//! Plugins in their own processes: handshake, calls through the engine, progress and logs,
//! artifacts in and out, concurrency, and crashes that fail only their step.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mediaflow_engine::{EngineOptions, RunControl};
use mediaflow_process_host::{describe, Supervisor};
use mediaflow_store::{RunStatus, StepStatus};
use mediaflow_tests::{Db, Harness};
use serde_json::json;

async fn harness_with_process() -> (Harness, Arc<Supervisor>) {
    let mut h = Harness::new(Db::Sqlite).await;
    let binary = describe(Path::new(env!("CARGO_BIN_EXE_testplugin-proc")))
        .await
        .expect("describe");
    assert_eq!(binary.name, "testplugin-proc");
    let names: Vec<_> = binary.descriptors.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        ["proc.echo", "proc.upper", "proc.abort", "proc.pinned"]
    );
    let sup = Supervisor::new(binary, vec![]);
    h.register(sup.plugins());
    (h, sup)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_run_in_one_long_lived_process_concurrently() {
    let (h, sup) = harness_with_process().await;
    let r = h.run(r#"
steps:
  a: { uses: proc.echo, with: { value: 1, ms: 400 } }
  b: { uses: proc.echo, with: { value: 2, ms: 400 } }
  c: { uses: proc.echo, needs: [a, b], with: { value: "${{ steps.a.outputs.value + steps.b.outputs.value }}" } }
"#, json!({})).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    assert_eq!(r.steps["c"].outputs["value"], json!(3));
    assert_eq!(sup.starts(), 1, "one process serves every call");
    let pid = r.steps["a"].outputs["pid"].clone();
    assert_eq!(r.steps["b"].outputs["pid"], pid);
    // a and b overlapped inside the one process, by the times the process recorded: each
    // started before the other finished.
    let at = |step: &str, key: &str| r.steps[step].outputs[key].as_u64().unwrap();
    assert!(
        at("a", "started_ms") < at("b", "finished_ms")
            && at("b", "started_ms") < at("a", "finished_ms"),
        "a and b ran at the same time in the process: {:?}",
        (r.steps["a"].outputs.clone(), r.steps["b"].outputs.clone())
    );
    let logs = h.store.logs(&r.run_id).await.unwrap();
    assert!(
        logs.iter()
            .any(|l| l.step_id == "a" && l.message.starts_with("echo in pid")),
        "{logs:?}"
    );
    sup.shutdown().await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_travel_as_paths_both_ways() {
    let (h, sup) = harness_with_process().await;
    let src = h.dir.path().join("story.txt");
    std::fs::write(&src, "flood defences hold").unwrap();
    let input = h.artifacts.store_file(&src, None).await.unwrap();
    let r = h.run("inputs:\n  doc: file\nsteps:\n  up: { uses: proc.upper, with: { file: \"${{ inputs.doc }}\" } }\n",
        json!({"doc": input.to_value()})).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    let out = mediaflow_plugin_api::ArtifactRef::from_value(&r.steps["up"].outputs["file"])
        .expect("an artifact");
    assert_eq!(out.name.as_deref(), Some("upper.txt"));
    let path = h
        .artifacts
        .locate(&out)
        .await
        .expect("imported into the store");
    assert_eq!(
        std::fs::read_to_string(path).unwrap(),
        "FLOOD DEFENCES HOLD"
    );
    sup.shutdown().await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_fails_only_its_step_and_the_process_comes_back() {
    let (h, sup) = harness_with_process().await;
    let r = h
        .run(
            r#"
steps:
  crash: { uses: proc.abort }
  slow: { uses: proc.echo, with: { value: ok, ms: 300 } }
"#,
            json!({}),
        )
        .await;
    assert_eq!(r.steps["crash"].status, StepStatus::Failed);
    let err = r.steps["crash"].error.clone().unwrap();
    assert_eq!(err["code"], "plugin_crashed");
    assert!(
        err["message"].as_str().unwrap().contains("about to abort"),
        "{err}"
    );
    // `slow` was in the same process when it died: it fails too, but only it.
    let again = h
        .run(
            "steps:\n  e: { uses: proc.echo, with: { value: 5 } }\n",
            json!({}),
        )
        .await;
    assert_eq!(again.status, RunStatus::Succeeded);
    assert!(sup.starts() >= 2, "restarted after the crash");
    sup.shutdown().await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_process_mid_step_is_retried() {
    let (h, sup) = harness_with_process().await;
    let killer = mediaflow_tests::kill_when_running(sup.clone(), Duration::from_millis(200));
    let r = h.run(r#"
steps:
  long: { uses: proc.echo, cache: false, retry: { max_attempts: 2, backoff: 10ms }, with: { value: 1, ms: 1500 } }
  other: { uses: test.probe, with: { key: other, ms: 100 } }
"#, json!({})).await;
    killer.await.unwrap();
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    assert_eq!(r.steps["long"].attempts, 2);
    assert_eq!(r.steps["other"].status, StepStatus::Succeeded);
    assert_eq!(sup.starts(), 2);
    sup.shutdown().await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_reaches_the_plugin_process() {
    let (h, sup) = harness_with_process().await;
    let ctl = RunControl::default();
    let cancel = ctl.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        cancel.cancel();
    });
    let r = h
        .run_with(
            "steps:\n  long: { uses: proc.echo, with: { ms: 30000 } }\n",
            json!({}),
            EngineOptions::default(),
            ctl,
        )
        .await;
    assert_eq!(r.status, RunStatus::Cancelled);
    assert_eq!(r.steps["long"].status, StepStatus::Cancelled);
    // The `cancel` reached the process, which stopped the call by itself well within the
    // engine's grace period (5 s), and it still serves.
    let logs = h.store.logs(&r.run_id).await.unwrap();
    let saw: u64 = logs
        .iter()
        .find_map(|l| l.message.strip_prefix("saw the cancel after "))
        .and_then(|rest| rest.trim_end_matches(" ms").parse().ok())
        .unwrap_or_else(|| panic!("the plugin never saw the cancel: {logs:?}"));
    let grace = EngineOptions::default().cancel_grace.as_millis() as u64;
    assert!(saw < 400 + grace / 2, "saw the cancel after {saw} ms");
    let again = h
        .run(
            "steps:\n  e: { uses: proc.echo, with: { value: 1 } }\n",
            json!({}),
        )
        .await;
    assert_eq!(again.status, RunStatus::Succeeded);
    assert_eq!(sup.starts(), 1);
    sup.shutdown().await;
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_plugin_checks_settings_when_the_workflow_compiles() {
    let (h, sup) = harness_with_process().await;
    let yaml = "steps:\n  a: { uses: proc.echo, with: { value: 1 } }\n  b:\n    uses: proc.echo\n    with: { value: forbidden }\n";
    let err = match mediaflow_workflow::compile_str("p.yaml", yaml, &h.registry) {
        Ok(_) => panic!("compiled a value the process refuses"),
        Err(d) => d,
    };
    assert_eq!(err.problems.len(), 1, "{}", err.render(false));
    let p = &err.problems[0];
    assert_eq!((p.line, p.column), (5, 20), "{}", err.render(false));
    assert_eq!(p.step.as_deref(), Some("b"));
    let pid = sup.pid().await.expect("the process was started to answer");
    assert_eq!(
        p.message,
        format!("invalid `with/value` for `proc.echo`: `forbidden` is refused by process {pid}")
    );
    assert_eq!(p.help.as_deref(), Some("echo anything else"));
    // The engine asks again with resolved values, so an expression cannot smuggle it in.
    let r = h
        .run(
            "inputs: { v: string }\nsteps:\n  a: { uses: proc.echo, with: { value: \"${{ inputs.v }}\" } }\n",
            json!({"v": "forbidden"}),
        )
        .await;
    let e = r.steps["a"].error.clone().unwrap();
    assert_eq!(e["code"], "invalid_config", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("is refused by process"),
        "{e}"
    );
    assert_eq!(sup.starts(), 1, "one process answers checks and runs");
    sup.shutdown().await;
    h.cleanup().await;
}

/// A fake plugin executable that says hello in another protocol version.
fn old_plugin(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("mediaflow-old");
    std::fs::write(
        &path,
        "#!/bin/sh\necho '{\"type\":\"hello\",\"protocol\":1,\"name\":\"mediaflow-old\",\"version\":\"0.9.0\",\"plugins\":[]}'\nsleep 5\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_refuses_a_plugin_of_another_protocol_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let err = describe(&old_plugin(dir.path()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mediaflow-old 0.9.0 speaks plugin protocol 1")
            && err.contains(&format!(
                "mediaflow {} speaks {}",
                env!("CARGO_PKG_VERSION"),
                mediaflow_protocol::PROTOCOL_VERSION
            )),
        "{err}"
    );
}

#[test]
fn a_plugin_refuses_a_host_of_another_protocol_naming_both() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_testplugin-proc"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(
        stdin,
        r#"{{"type":"hello","protocol":99,"host":"mediaflow 9.0.0"}}"#
    )
    .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let hello = lines.next().unwrap().unwrap();
    assert!(hello.contains(r#""type":"hello""#), "{hello}");
    let refused: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(refused["type"], "refused", "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("testplugin-proc 1.0.0 speaks plugin protocol 3")
            && message.contains("mediaflow 9.0.0 speaks 99"),
        "{message}"
    );
    // It exits instead of serving a host it cannot understand.
    assert!(child.wait().unwrap().success());
}

/// A plugin process whose worker thread died answers `plugin_broken` and exits, so the next
/// call runs in a fresh process instead of failing for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_whose_worker_thread_died_is_restarted() {
    let (h, sup) = harness_with_process().await;
    let r = h
        .run(
            "steps:\n  die: { uses: proc.pinned, with: { panic: true } }\n",
            json!({}),
        )
        .await;
    let e = r.steps["die"].error.clone().unwrap();
    assert_eq!(e["code"], mediaflow_protocol::PLUGIN_BROKEN, "{e}");
    let mut pids = Vec::new();
    for _ in 0..2 {
        let again = h
            .run("steps:\n  work: { uses: proc.pinned }\n", json!({}))
            .await;
        assert_eq!(again.status, RunStatus::Succeeded, "{again:?}");
        pids.push(again.steps["work"].outputs["pid"].clone());
    }
    assert_eq!(pids[0], pids[1], "one fresh process serves on");
    assert_eq!(sup.starts(), 2, "restarted once, after the broken call");
    sup.shutdown().await;
    h.cleanup().await;
}

//! The `mediaflow` binary as a user runs it: exit codes, messages, JSON, crash resume.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{bin, run, workflows};
use mediaflow_store::{RunFilter, RunStatus, StepStatus, Store};
use serde_json::Value;

#[test]
fn validate_reports_ok_and_problems() {
    let (code, out, _) = run(bin()
        .arg("validate")
        .arg(workflows().join("morning-brief.yaml")));
    assert_eq!(code, 0);
    assert!(out.contains("ok (3 steps, 3 inputs)"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "steps:\n  a:\n    uses: text.templat\n").unwrap();
    let (code, _, err) = run(bin().arg("validate").arg(&bad));
    assert_eq!(code, 1);
    assert!(err.contains("bad.yaml:3:11"), "{err}");
    assert!(err.contains("did you mean `text.template`?"), "{err}");
}

#[test]
fn bad_files_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(bin().arg("validate").arg(dir.path().join("missing.yaml")));
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot read workflow file") && err.contains("missing.yaml"),
        "{err}"
    );
    let latin1 = dir.path().join("latin1.yaml");
    std::fs::write(&latin1, b"name: caf\xe9\nsteps: {}\n").unwrap();
    let (code, _, err) = run(bin().arg("validate").arg(&latin1));
    assert_eq!(code, 1);
    assert!(
        err.contains("is not UTF-8 text (invalid byte at offset 9)"),
        "{err}"
    );
    let binary = dir.path().join("binary.yaml");
    std::fs::write(&binary, b"\x00\x01\x02: [").unwrap();
    let (code, _, err) = run(bin().arg("validate").arg(&binary));
    assert_eq!(code, 1);
    assert!(err.contains("binary.yaml"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, _) = run(bin().arg("frobnicate"));
    assert_eq!(code, 2);
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["run", "--input", "no-equals-sign"])
        .arg(workflows().join("morning-brief.yaml")));
    assert_eq!(code, 2);
    assert!(err.contains("must look like NAME=VALUE"), "{err}");
    let (code, _, err) = run(bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["run", "--input", "nope=1"])
        .arg(workflows().join("morning-brief.yaml")));
    assert_eq!(code, 2);
    assert!(err.contains("unknown input `nope`"), "{err}");
}

#[test]
fn an_unreachable_database_is_named_without_the_password() {
    let (code, _, err) = run(bin().args([
        "--database-url",
        "postgres://newsroom:s3cret@127.0.0.1:9/mediaflow",
        "runs",
    ]));
    assert_eq!(code, 1);
    assert!(
        err.contains("postgres://newsroom:***@127.0.0.1:9/mediaflow"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
}

#[test]
fn run_json_has_the_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("brief.md");
    let (code, out, err) = run(bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["run", "--json", "--input"])
        .arg(format!("out={}", out_file.display()))
        .arg(workflows().join("morning-brief.yaml")));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("one JSON object on stdout");
    assert_eq!(v["status"], "succeeded");
    assert!(v["run_id"].is_string());
    let headline = &v["steps"]["headline"];
    assert_eq!(headline["outputs"].as_array().map(Vec::len), Some(3));
    for key in ["status", "attempts", "outputs", "error", "duration_ms"] {
        assert!(
            v["steps"]["digest"].get(key).is_some(),
            "steps.digest.{key}"
        );
    }
    let digest = v["outputs"]["digest"].as_str().unwrap();
    assert!(
        digest.contains("COUNCIL APPROVES NEW RIVER CROSSING"),
        "{digest}"
    );
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), digest);
    // `show` and `runs` read the same run back.
    let id = v["run_id"].as_str().unwrap();
    let (code, out, _) = run(bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["show", id, "--json"]));
    assert_eq!(code, 0);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["outputs"], v["outputs"]);
    let (code, out, _) =
        run(bin()
            .arg("--data-dir")
            .arg(dir.path())
            .args(["runs", "--status", "succeeded"]));
    assert_eq!(code, 0);
    assert!(out.contains(id) && out.contains("morning-brief"), "{out}");
}

#[test]
fn a_failed_run_exits_1_and_structured_inputs_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("pick.yaml");
    std::fs::write(
        &flow,
        "inputs:\n  doc: object\nsteps:\n  pick:\n    uses: json.pick\n    with: { value: \"${{ inputs.doc }}\", path: story.title }\noutputs:\n  title: ${{ steps.pick.outputs.value }}\n",
    )
    .unwrap();
    let doc = dir.path().join("doc.yaml");
    std::fs::write(&doc, "story:\n  title: Flood defences hold\n").unwrap();
    let (code, out, err) = run(bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["run", "--json", "--input"])
        .arg(format!("doc=@{}", doc.display()))
        .arg(&flow));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["outputs"]["title"], "Flood defences hold");
    // A string input reads the file's text as is.
    let echo = dir.path().join("echo.yaml");
    std::fs::write(&echo, "inputs:\n  text: string\nsteps:\n  t: { uses: text.template, with: { template: \"${{ inputs.text }}\" } }\n").unwrap();
    let story = dir.path().join("story.txt");
    std::fs::write(&story, "Mayor: \"we will rebuild\"\n- not a YAML list\n").unwrap();
    let (code, out, err) = run(bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["run", "--json", "--input"])
        .arg(format!("text=@{}", story.display()))
        .arg(&echo));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["steps"]["t"]["outputs"]["text"],
        "Mayor: \"we will rebuild\"\n- not a YAML list" // Jinja drops the final newline
    );
    let (code, out, _) = run(bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["run", "--json", "--input", "doc={\"story\": {}}"])
        .arg(&flow));
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], "failed");
    assert_eq!(v["steps"]["pick"]["error"]["code"], "path_not_found");
}

#[test]
fn plugins_and_schema_are_listed() {
    let (code, out, _) = run(bin().arg("plugins"));
    assert_eq!(code, 0);
    for name in [
        "text.template",
        "json.pick",
        "json.merge",
        "file.read",
        "file.write",
        "core.delay",
    ] {
        assert!(out.contains(name), "{name} missing from:\n{out}");
    }
    let (code, out, _) = run(bin().args(["plugins", "core.delay"]));
    assert_eq!(code, 0);
    assert!(out.contains("\"duration\""), "{out}");
    let (code, out, _) = run(bin().arg("schema"));
    assert_eq!(code, 0);
    let schema: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(schema["title"], "mediaflow workflow");
}

// ---- crash resume: kill -9 a real `mediaflow run`, then finish the run ----------------

const CRASHY: &str = r#"
name: crashy
inputs:
  log: string
steps:
  first:
    uses: file.write
    with: { path: "${{ inputs.log }}", content: "first\n", append: true }
  slow:
    uses: core.delay
    needs: [first]
    with: { duration: 2s }
  last:
    uses: file.write
    needs: [slow]
    with: { path: "${{ inputs.log }}", content: "last\n", append: true }
"#;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Starts `mediaflow run`, waits until `slow` is running, kills the process with SIGKILL and
/// returns the run id.
fn start_and_kill(env: &[(&str, String)], dir: &Path, store: &Store) -> String {
    let flow = dir.join("crashy.yaml");
    std::fs::write(&flow, CRASHY).unwrap();
    let mut cmd = bin();
    cmd.arg("run")
        .arg(&flow)
        .arg("--input")
        .arg(format!("log={}", dir.join("log.txt").display()));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rt = rt();
    let deadline = Instant::now() + Duration::from_secs(60);
    let run_id = loop {
        assert!(Instant::now() < deadline, "the run never reached `slow`");
        let found = rt.block_on(async {
            let runs = store.list_runs(&RunFilter::default()).await.ok()?;
            let run = runs.into_iter().next()?;
            let steps = store.steps(&run.id).await.ok()?;
            steps
                .iter()
                .any(|s| s.step_id == "slow" && s.status == StepStatus::Running)
                .then_some(run.id)
        });
        if let Some(id) = found {
            break id;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let run = rt.block_on(store.get_run(&run_id)).unwrap();
    assert_eq!(
        run.status,
        RunStatus::Running,
        "a killed run is left running"
    );
    run_id
}

fn check_resumed(out: &str, dir: &Path) {
    let v: Value = serde_json::from_str(out).expect("JSON report");
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["resumed_count"], 1);
    assert_eq!(v["steps"]["first"]["status"], "succeeded");
    assert_eq!(v["steps"]["slow"]["status"], "succeeded");
    assert_eq!(v["steps"]["last"]["status"], "succeeded");
    // `first` appended once: it was never executed again.
    assert_eq!(
        std::fs::read_to_string(dir.join("log.txt")).unwrap(),
        "first\nlast\n"
    );
}

/// A run of `CRASHY` killed with SIGKILL mid-way, on SQLite in a fresh data dir or on
/// the PostgreSQL database at `database_url`.
struct Crashed {
    dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
    store: Store,
    run_id: String,
}

fn crashed_run(database_url: Option<String>) -> Crashed {
    let dir = tempfile::tempdir().unwrap();
    let mut env = vec![("MEDIAFLOW_DATA_DIR", dir.path().display().to_string())];
    let url = database_url.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("mediaflow.db").display()
        )
    });
    if let Some(u) = &database_url {
        env.push(("MEDIAFLOW_DATABASE_URL", u.clone()));
    }
    let store = rt().block_on(Store::connect(&url)).unwrap();
    let run_id = start_and_kill(&env, dir.path(), &store);
    Crashed {
        dir,
        env,
        store,
        run_id,
    }
}

fn kill_and_resume(database_url: Option<String>, via_run_flag: bool) {
    let Crashed {
        dir,
        env,
        store,
        run_id,
    } = crashed_run(database_url);
    let mut cmd = bin();
    for (k, v) in &env {
        cmd.env(k, v);
    }
    if via_run_flag {
        cmd.arg("run")
            .arg(dir.path().join("crashy.yaml"))
            .arg("--resume")
            .arg("--json");
        cmd.arg("--input")
            .arg(format!("log={}", dir.path().join("log.txt").display()));
    } else {
        cmd.args(["resume", &run_id, "--json"]);
    }
    let (code, out, err) = run(&mut cmd);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["run_id"], run_id.as_str());
    check_resumed(&out, dir.path());
    rt().block_on(store.close());
}

#[test]
fn resume_after_kill_9_on_sqlite() {
    kill_and_resume(None, false);
}

#[test]
fn run_resume_flag_after_kill_9_on_sqlite() {
    kill_and_resume(None, true);
}

#[test]
fn resume_after_kill_9_on_postgres() {
    let url = rt().block_on(mediaflow_tests::fresh_postgres());
    kill_and_resume(Some(url.clone()), false);
    rt().block_on(mediaflow_tests::drop_postgres(&url));
}

#[test]
fn run_resume_flag_after_kill_9_on_postgres() {
    let url = rt().block_on(mediaflow_tests::fresh_postgres());
    kill_and_resume(Some(url.clone()), true);
    rt().block_on(mediaflow_tests::drop_postgres(&url));
}

#[test]
fn models_are_listed_added_verified_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let cmd = |args: &[&str]| {
        let mut c = bin();
        c.env("MEDIAFLOW_MODELS", &models)
            .arg("--data-dir")
            .arg(dir.path())
            .arg("models")
            .args(args);
        run(&mut c)
    };
    let (code, out, _) = cmd(&["list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("smollm2-135m-instruct") && out.contains("gemma3-270m"),
        "{out}"
    );
    let (code, _, err) = cmd(&["pull", "gpt-17"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown model `gpt-17`"), "{err}");
    let own = dir.path().join("own.gguf");
    std::fs::write(&own, b"GGUF and then some bytes").unwrap();
    let (code, out, err) = cmd(&["add", "desk-model", "--path", own.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("gguf"), "{out}");
    let (code, out, _) = cmd(&["verify"]);
    assert_eq!(code, 0);
    assert!(out.contains("✔ desk-model: ok"), "{out}");
    std::fs::write(&own, b"GGUF changed behind our back").unwrap();
    let (code, out, _) = cmd(&["verify"]);
    assert_eq!(code, 1);
    assert!(out.contains("✘ desk-model"), "{out}");
    let (code, _, _) = cmd(&["rm", "desk-model"]);
    assert_eq!(code, 0);
    assert!(
        own.exists(),
        "an added model's file is the user's: rm only forgets it"
    );
}

/// Two `mediaflow resume` processes started together on one interrupted run: exactly one
/// drives it (the claim is one conditional UPDATE), the other is refused, and every step
/// runs once.
fn two_resumes_at_once(database_url: Option<String>) {
    let Crashed {
        dir,
        env,
        store,
        run_id,
    } = crashed_run(database_url);
    let resumers: Vec<_> = (0..2)
        .map(|_| {
            let mut cmd = bin();
            for (k, v) in &env {
                cmd.env(k, v);
            }
            cmd.args(["resume", &run_id, "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = resumers
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let winners: Vec<_> = outs.iter().filter(|o| o.status.success()).collect();
    let losers: Vec<_> = outs.iter().filter(|o| !o.status.success()).collect();
    assert_eq!(winners.len(), 1, "exactly one resume drives the run");
    let refusal = String::from_utf8_lossy(&losers[0].stderr);
    assert!(
        refusal.contains("claimed by another process") || refusal.contains("is still running"),
        "{refusal}"
    );
    check_resumed(&String::from_utf8_lossy(&winners[0].stdout), dir.path());
    rt().block_on(store.close());
}

#[test]
fn two_resumes_at_once_on_sqlite() {
    two_resumes_at_once(None);
}

#[test]
fn two_resumes_at_once_on_postgres() {
    let url = rt().block_on(mediaflow_tests::fresh_postgres());
    two_resumes_at_once(Some(url.clone()));
    rt().block_on(mediaflow_tests::drop_postgres(&url));
}

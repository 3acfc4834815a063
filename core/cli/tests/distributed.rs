//! Distributed runs on the real PostgreSQL: `mediaflow run --distributed` coordinators and
//! `mediaflow worker` processes, each with a data dir of its own (nothing is shared through
//! the filesystem; artifacts go through the database). A worker killed with SIGKILL, a
//! worker paused past its lease and woken, PostgreSQL restarted mid-run, a plugin only one
//! worker has, and an uploaded audio file transcribed by a worker on another data dir.
//!
//! The scenarios run one after another in one test: the restart cuts every connection to
//! the server, and this binary's other scenarios must not see it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, built_beside};
use mediaflow_store::{Store, TaskRecord, TaskState};
use serde_json::Value;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// One scenario's database and directories.
struct Cluster {
    url: String,
    dir: tempfile::TempDir,
    children: Vec<Child>,
    store: Store,
    rt: tokio::runtime::Runtime,
}

impl Cluster {
    fn new() -> Cluster {
        let rt = rt();
        let url = rt.block_on(mediaflow_tests::fresh_postgres());
        let store = rt.block_on(Store::connect(&url)).expect("connect");
        Cluster {
            url,
            dir: tempfile::tempdir().expect("temp dir"),
            children: Vec::new(),
            store,
            rt,
        }
    }

    /// A data dir of its own for `name`.
    fn data(&self, name: &str) -> PathBuf {
        let d = self.dir.path().join(name);
        std::fs::create_dir_all(&d).expect("data dir");
        d
    }

    fn command(&self, name: &str, args: &[&str]) -> Command {
        let mut c = bin();
        c.arg("--data-dir")
            .arg(self.data(name))
            .arg("--database-url")
            .arg(&self.url)
            .args(args);
        c
    }

    /// Starts `mediaflow worker --name NAME ARGS`, its output in `NAME.log`.
    fn worker(&mut self, name: &str, args: &[&str]) -> usize {
        let log = std::fs::File::create(self.log(name)).expect("log file");
        let mut all = vec!["worker", "--name", name];
        all.extend_from_slice(args);
        let child = self
            .command(name, &all)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start worker");
        self.children.push(child);
        self.children.len() - 1
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    fn log_text(&self, name: &str) -> String {
        std::fs::read_to_string(self.log(name)).unwrap_or_default()
    }

    /// Starts a coordinator running `workflow` with `inputs`, printing its report as JSON.
    fn coordinator(&mut self, workflow: &str, inputs: &[&str]) -> usize {
        let file = self.dir.path().join("workflow.yaml");
        std::fs::write(&file, workflow).expect("workflow");
        let log = std::fs::File::create(self.log("coordinator")).expect("log file");
        let mut c = self.command("coordinator", &["run", "--distributed", "--json"]);
        c.arg(&file);
        for i in inputs {
            c.arg("-i").arg(i);
        }
        let out = std::fs::File::create(self.dir.path().join("report.json")).expect("report");
        let child = c
            .stdout(out)
            .stderr(log)
            .spawn()
            .expect("start coordinator");
        self.children.push(child);
        self.children.len() - 1
    }

    /// Waits for the coordinator (child `i`) and returns its report.
    fn report(&mut self, i: usize) -> Value {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Some(status) = self.children[i].try_wait().expect("wait") {
                let text = std::fs::read_to_string(self.dir.path().join("report.json"))
                    .unwrap_or_default();
                return serde_json::from_str(&text).unwrap_or_else(|_| {
                    panic!(
                        "coordinator ended {status} without a report:\n{}",
                        self.diagnostics()
                    )
                });
            }
            assert!(
                Instant::now() < deadline,
                "the run did not finish:\n{}",
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the coordinator (child `i`), asserts the run succeeded, returns its report.
    fn succeeded(&mut self, i: usize) -> Value {
        let report = self.report(i);
        assert_eq!(
            report["status"],
            "succeeded",
            "{report:#}\n{}",
            self.diagnostics()
        );
        report
    }

    fn diagnostics(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "log") {
                    out.push_str(&format!(
                        "--- {}\n{}\n",
                        p.display(),
                        std::fs::read_to_string(&p).unwrap_or_default()
                    ));
                }
            }
        }
        out
    }

    fn signal(&self, i: usize, sig: &str) {
        let pid = self.children[i].id().to_string();
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid}");
    }

    /// The id of the only run in the database, once it exists.
    fn run_id(&self) -> Option<String> {
        let runs = self
            .rt
            .block_on(self.store.list_runs(&Default::default()))
            .unwrap_or_default();
        runs.first().map(|r| r.id.clone())
    }

    /// The tasks of the only run in the database (none before it exists).
    fn tasks(&self) -> Vec<TaskRecord> {
        match self.run_id() {
            Some(id) => self
                .rt
                .block_on(self.store.run_tasks(&id))
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// Waits until `ok` holds of the tasks.
    fn until(&self, what: &str, ok: impl Fn(&[TaskRecord]) -> bool) -> Vec<TaskRecord> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let tasks = self.tasks();
            if ok(&tasks) {
                return tasks;
            }
            assert!(
                Instant::now() < deadline,
                "never {what}:\n{tasks:#?}\n{}",
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ends the scenario: its processes and database go (see the `Drop`).
    fn finish(self) {}
}

/// The processes go with the scenario, also when it fails (a panic), and so does its
/// database.
impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
        self.rt.block_on(mediaflow_tests::drop_postgres(&self.url));
    }
}

/// `items=[0,1,…]`: the fan-out's input.
fn items(n: usize) -> String {
    let list: Vec<usize> = (0..n).collect();
    format!("items={}", serde_json::to_string(&list).unwrap_or_default())
}

/// Whether a task is running on worker `name`.
fn running_on(tasks: &[TaskRecord], name: &str) -> bool {
    tasks
        .iter()
        .any(|t| t.state == TaskState::Running && t.worker.as_deref() == Some(name))
}

fn succeeded(tasks: &[TaskRecord]) -> usize {
    tasks
        .iter()
        .filter(|t| t.state == TaskState::Succeeded)
        .count()
}

const FANOUT: &str = r#"
name: fanout
inputs:
  items: { type: list }
steps:
  items:
    uses: core.delay
    for_each: ${{ inputs.items }}
    with:
      duration: 300ms
  total:
    uses: json.pick
    with:
      value: ${{ steps.items.outputs }}
      path: /0/slept_ms
"#;

/// Three workers; one is killed with SIGKILL mid-run. The run completes, every item has
/// one succeeded task and one record, and the killed worker's items ran elsewhere.
fn killed_worker() {
    let mut c = Cluster::new();
    let lease = ["--concurrency", "4", "--lease", "2s"];
    let a = c.worker("a", &lease);
    c.worker("b", &lease);
    c.worker("c", &lease);
    let run = c.coordinator(FANOUT, &[&items(200)]);
    c.until("started on a", |t| succeeded(t) >= 30 && running_on(t, "a"));
    c.signal(a, "-KILL");
    let report = c.succeeded(run);
    let tasks = c.tasks();
    assert_eq!(tasks.len(), 201, "200 items and the fan-in");
    assert_eq!(succeeded(&tasks), 201, "{tasks:#?}");
    // The items a held when it died were claimed again, counting an attempt, and finished
    // by another worker.
    let again: Vec<&TaskRecord> = tasks.iter().filter(|t| t.attempts > 1).collect();
    assert!(!again.is_empty(), "a held nothing when killed");
    for t in &again {
        assert_ne!(t.worker.as_deref(), Some("a"), "{t:#?}");
        assert_eq!(t.generation, i64::from(t.attempts), "{t:#?}");
    }
    let items = report["steps"]["items"]["items"].as_array().expect("items");
    assert_eq!(items.len(), 200);
    assert!(items.iter().all(|i| i["status"] == "succeeded"));
    // Each record names the worker that ran it.
    assert!(items
        .iter()
        .all(|i| ["a", "b", "c"].contains(&i["worker"].as_str().unwrap_or(""))));
    c.finish();
}

const SLOW: &str = r#"
name: slow
steps:
  wait:
    uses: core.delay
    with:
      duration: 3s
"#;

/// A worker paused past its lease: its step runs elsewhere, and when it wakes its late
/// result is refused; the stored result is the newer attempt's.
fn paused_worker() {
    let mut c = Cluster::new();
    let a = c.worker("a", &["--lease", "1s"]);
    let run = c.coordinator(SLOW, &[]);
    c.until("claimed by a", |t| running_on(t, "a"));
    c.signal(a, "-STOP");
    c.worker("b", &["--lease", "1s"]);
    let tasks = c.until("claimed again by b", |t| running_on(t, "b"));
    assert_eq!(tasks[0].generation, 2, "{tasks:#?}");
    // a wakes while b is still on the step: its renewal and its result are refused, and
    // b's claim goes on.
    c.signal(a, "-CONT");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !c.log_text("a").contains("result refused") {
        assert!(
            Instant::now() < deadline,
            "a's late result:\n{}",
            c.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let report = c.succeeded(run);
    assert_eq!(report["steps"]["wait"]["worker"], "b", "{report:#}");
    let t = &c.tasks()[0];
    assert_eq!(
        (t.state, t.worker.as_deref(), t.generation),
        (TaskState::Succeeded, Some("b"), 2)
    );
    c.finish();
}

/// `pg_ctlcluster ACTION` on the cluster at port 5432, as root or with passwordless sudo.
fn pg_ctl(action: &str) {
    let list = Command::new("pg_lsclusters")
        .arg("-h")
        .output()
        .expect("pg_lsclusters");
    let text = String::from_utf8_lossy(&list.stdout);
    let f: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == "5432")
        .expect("a cluster on port 5432");
    let root = std::process::id() == 0
        || Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let mut cmd = if root {
        Command::new("pg_ctlcluster")
    } else {
        let mut c = Command::new("sudo");
        c.args(["-n", "pg_ctlcluster"]);
        c
    };
    let ok = cmd
        .args(["--skip-systemctl-redirect", f[0], f[1], action])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "`pg_ctlcluster {action}` failed (run as root, or with passwordless sudo)"
    );
}

/// PostgreSQL restarts in the middle of a run: workers and coordinator reconnect.
fn database_restart() {
    let mut c = Cluster::new();
    c.worker("a", &["--concurrency", "4"]);
    c.worker("b", &["--concurrency", "4"]);
    let run = c.coordinator(FANOUT, &[&items(60)]);
    // Restarted while steps are running, not after the run.
    c.until("under way", |t| {
        succeeded(t) >= 10 && t.iter().any(|t| t.state == TaskState::Running)
    });
    pg_ctl("restart");
    c.succeeded(run);
    assert_eq!(succeeded(&c.tasks()), 61);
    c.finish();
}

const MIXED: &str = r#"
name: mixed
steps:
  wait:
    uses: core.delay
    with:
      duration: 10ms
  headline:
    uses: text.template
    runs_on: [desk]
    with:
      template: "Budget passes after {{ ms }} ms"
      vars: { ms: "${{ steps.wait.outputs.slept_ms }}" }
"#;

/// A step whose plugin (and `runs_on:` tag) only one worker has waits, saying so, until
/// that worker comes, and runs there.
fn plugin_on_one_worker() {
    let mut c = Cluster::new();
    c.worker("delays", &["--plugins", "core.delay"]);
    let run = c.coordinator(MIXED, &[]);
    c.until("waiting for a template worker", |t| {
        t.iter()
            .any(|t| t.step_id == "headline" && t.state == TaskState::Ready)
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = match c.run_id() {
            Some(id) => c.rt.block_on(c.store.logs(&id)).unwrap_or_default(),
            None => Vec::new(),
        };
        if logs.iter().any(|l| {
            l.message
                .contains("waiting for a worker with text.template + desk")
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "no waiting notice: {logs:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    c.worker("writer", &["--plugins", "text.*", "--tags", "desk"]);
    let report = c.succeeded(run);
    assert_eq!(report["steps"]["wait"]["worker"], "delays");
    assert_eq!(report["steps"]["headline"]["worker"], "writer");
    let text = report["steps"]["headline"]["outputs"]["text"]
        .as_str()
        .unwrap_or("");
    assert!(text.starts_with("Budget passes after 1"), "{report:#}");
    c.finish();
}

const TRANSCRIBE: &str = r#"
name: transcribe-remote
inputs:
  audio: { type: file }
steps:
  transcribe:
    uses: audio.transcribe
    with:
      audio: ${{ inputs.audio }}
      model: whisper-tiny.en
      language: en
outputs:
  text: ${{ steps.transcribe.outputs.text }}
"#;

/// An audio file given to the coordinator is transcribed by a worker on another data dir:
/// it reaches the worker through the database, and the worker keeps it by sha256.
fn audio_on_another_data_dir(speech: &Path) {
    let mut c = Cluster::new();
    c.worker("asr", &["--plugins", "audio.*"]);
    let input = format!("audio=@{}", speech.display());
    let run = c.coordinator(TRANSCRIBE, &[&input]);
    let report = c.succeeded(run);
    assert_eq!(report["steps"]["transcribe"]["worker"], "asr");
    let text = report["outputs"]["text"]
        .as_str()
        .unwrap_or("")
        .to_lowercase();
    assert!(text.contains("budget"), "{text}");
    let sha = report["inputs"]["audio"]["sha256"]
        .as_str()
        .expect("sha256");
    // It went through the database, and the worker keeps its own copy.
    assert!(c.rt.block_on(c.store.has_blob(sha)).expect("has_blob"));
    let cached = c.data("asr").join("artifacts").join(&sha[..2]).join(sha);
    assert!(
        cached.is_file(),
        "{} is not in the worker's store",
        cached.display()
    );
    c.finish();
}

/// Speech made with espeak-ng (installed by scripts/setup.sh).
fn speech(dir: &Path) -> PathBuf {
    let wav = dir.join("budget.wav");
    let ok = Command::new("espeak-ng")
        .args(["-s", "150", "-w"])
        .arg(&wav)
        .arg("The city council passed the budget on Tuesday night.")
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "espeak-ng failed (scripts/setup.sh installs it)");
    wav
}

#[test]
fn distributed_runs_on_postgres() {
    built_beside("mediaflow-asr");
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = speech(dir.path());
    plugin_on_one_worker();
    killed_worker();
    paused_worker();
    audio_on_another_data_dir(&wav);
    database_restart();
}

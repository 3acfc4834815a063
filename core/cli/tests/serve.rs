//! `mediaflow serve` as a process: tokens made with `mediaflow token`, SIGTERM in the
//! middle of a run and a second `serve` that finishes it, two services firing one
//! schedule, and the web view in headless Chromium.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{bin, run};
use serde_json::{json, Value};

/// A `mediaflow serve` process on a free port.
struct Served {
    child: Child,
    base: String,
}

impl Served {
    fn start(data: &Path, workflows: &Path, extra: &[&str]) -> Served {
        let port = free_port();
        let mut cmd = bin();
        cmd.arg("--data-dir")
            .arg(data)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--workflows",
            ])
            .arg(workflows)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = cmd.spawn().expect("mediaflow serve starts");
        let base = format!("http://127.0.0.1:{port}");
        let served = Served { child, base };
        // Wait for /health (the first start compiles the workflows and opens the store).
        for _ in 0..600 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return served;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("mediaflow serve did not listen on {port}");
    }

    fn sigterm(&self) {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(ok.map(|s| s.success()).unwrap_or(false), "kill -TERM {pid}");
    }

    /// Waits for the process to exit; its exit code and stderr.
    fn wait(mut self) -> (i32, String) {
        for _ in 0..600 {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let status = self.child.wait().expect("exit status");
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read as _;
            let _ = e.read_to_string(&mut err);
        }
        (status.code().unwrap_or(-1), err)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn token(data: &Path, scope: &str) -> String {
    let (code, out, err) = run(bin()
        .arg("--data-dir")
        .arg(data)
        .args(["token", "create", "--name", scope, "--scope", scope]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("not shown again"), "{err}");
    out.trim().to_owned()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn get(http: &reqwest::Client, url: &str, token: &str) -> Value {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .unwrap_or(Value::Null)
}

/// Starts workflow `name` of the service's directory; the run's id.
async fn submit(http: &reqwest::Client, base: &str, token: &str, name: &str) -> String {
    let resp: Value = http
        .post(format!("{base}/api/v1/runs"))
        .bearer_auth(token)
        .json(&json!({"workflow": name}))
        .send()
        .await
        .expect("POST /runs")
        .json()
        .await
        .expect("JSON");
    resp["run_id"].as_str().expect("run id").to_owned()
}

/// Polls run `id` until `done` holds for it.
async fn wait_for(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..1200 {
        let run = get(http, &format!("{base}/api/v1/runs/{id}"), token).await;
        if done(&run) {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {id} never got there");
}

const THREE_STEPS: &str = "\
name: three
steps:
  first:
    uses: text.template
    with: { template: 'one' }
  slow:
    uses: core.delay
    needs: [first]
    with: { duration: 3s }
  last:
    uses: text.template
    needs: [slow]
    with: { template: 'three' }
";

#[test]
fn sigterm_mid_run_then_a_new_serve_finishes_it_without_rerunning_finished_steps() {
    let data = tempfile::tempdir().unwrap();
    let flows = tempfile::tempdir().unwrap();
    std::fs::write(flows.path().join("three.yaml"), THREE_STEPS).unwrap();
    let token = token(data.path(), "run");
    let rt = rt();
    let http = reqwest::Client::new();
    let first = Served::start(data.path(), flows.path(), &["--grace", "0s"]);
    let (id, before) = rt.block_on(async {
        let id = submit(&http, &first.base, &token, "three").await;
        let run = wait_for(&http, &first.base, &token, &id, |r| {
            r["steps"]["slow"]["status"] == "running"
        })
        .await;
        (id, run)
    });
    assert_eq!(before["steps"]["first"]["status"], "succeeded");
    first.sigterm();
    let (code, err) = first.wait();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("left for the next serve to resume"), "{err}");
    let second = Served::start(data.path(), flows.path(), &[]);
    let after = rt.block_on(wait_for(&http, &second.base, &token, &id, |r| {
        r["status"] != "running"
    }));
    assert_eq!(after["status"], "succeeded", "{after}");
    assert_eq!(after["resumed_count"], 1);
    // The finished step was not run again: same start, one attempt.
    assert_eq!(
        after["steps"]["first"]["started_at"],
        before["steps"]["first"]["started_at"]
    );
    assert_eq!(after["steps"]["first"]["attempts"], 1);
    assert_eq!(after["steps"]["last"]["status"], "succeeded");
    second.sigterm();
    assert_eq!(second.wait().0, 0);
}

#[test]
fn two_serve_processes_fire_each_tick_once() {
    let data = tempfile::tempdir().unwrap();
    let flows = tempfile::tempdir().unwrap();
    // Every second (croner's optional seconds field).
    std::fs::write(
        flows.path().join("tick.yaml"),
        "name: tick\nschedule: { cron: '* * * * * *', concurrency: allow }\nsteps:\n  say:\n    uses: text.template\n    with: { template: x }\n",
    )
    .unwrap();
    // Both on one SQLite file (the same data dir), as two services on one database.
    let a = Served::start(data.path(), flows.path(), &[]);
    let b = Served::start(data.path(), flows.path(), &[]);
    std::thread::sleep(Duration::from_secs(4));
    a.sigterm();
    b.sigterm();
    let (ca, ea) = a.wait();
    let (cb, eb) = b.wait();
    assert_eq!((ca, cb), (0, 0), "{ea}\n{eb}");
    let rt = rt();
    rt.block_on(async {
        let store = mediaflow_store::Store::open_sqlite(&data.path().join("mediaflow.db"))
            .await
            .unwrap();
        let ticks = store.ticks(Some("tick")).await.unwrap();
        assert!(ticks.len() >= 2, "{ticks:?}");
        let mut seen: Vec<i64> = ticks.iter().map(|t| t.tick).collect();
        seen.dedup();
        assert_eq!(seen.len(), ticks.len(), "a tick was fired twice");
        let runs = store.list_runs(&Default::default()).await.unwrap();
        let started = ticks.iter().filter(|t| t.run_id.is_some()).count();
        assert_eq!(runs.len(), started, "one run per fired tick");
        let by: std::collections::BTreeSet<&str> =
            ticks.iter().map(|t| t.fired_by.as_str()).collect();
        eprintln!("{} ticks, fired by {by:?}", ticks.len());
    });
}

#[test]
fn schedules_lists_the_next_fire_times() {
    let flows = tempfile::tempdir().unwrap();
    std::fs::write(
        flows.path().join("brief.yaml"),
        "name: brief\nschedule: { cron: '0 6 * * 1-5', timezone: Europe/London }\nsteps:\n  say:\n    uses: text.template\n    with: { template: x }\n",
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let (code, out, err) = run(bin()
        .arg("--data-dir")
        .arg(data.path())
        .args(["schedules", "--json", "--workflows"])
        .arg(flows.path()));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    let next = v[0]["next"].as_array().expect("next times");
    assert_eq!(next.len(), 5);
    for t in next {
        let t = chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap()).unwrap();
        let local = t.with_timezone(&chrono_tz::Europe::London);
        assert_eq!(local.format("%H:%M").to_string(), "06:00");
        assert!(!matches!(
            local.format("%a").to_string().as_str(),
            "Sat" | "Sun"
        ));
    }
}

#[path = "serve/browser.rs"]
mod browser;

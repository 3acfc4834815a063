//! The database goes away under a running run. PostgreSQL is restarted and stopped for real
//! (`pg_ctlcluster`), and a SQLite file is held locked by another connection. This file is
//! a test binary of its own, and its PostgreSQL scenarios run one after another in one
//! test, so no other test's connections are cut.

use std::process::Command;
use std::time::{Duration, Instant};

use mediaflow_engine::{Engine, EngineError, EngineOptions, RunControl};
use mediaflow_store::{RunStatus, StepStatus, StoreError};
use mediaflow_tests::{Db, Harness};
use serde_json::Map;

/// `pg_ctlcluster ACTION` succeeded (`status`: the cluster is running).
fn pg_ctl_ok(action: &str) -> bool {
    let Ok(list) = Command::new("pg_lsclusters").arg("-h").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&list.stdout);
    let Some(f) = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == "5432")
    else {
        return false;
    };
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let mut cmd = if root {
        Command::new("pg_ctlcluster")
    } else {
        let mut c = Command::new("sudo");
        c.args(["-n", "pg_ctlcluster"]);
        c
    };
    cmd.args(["--skip-systemctl-redirect", f[0], f[1], action])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn pg_ctl(action: &str) {
    assert!(
        pg_ctl_ok(action),
        "`pg_ctlcluster {action}` failed for the cluster on port 5432 (run as root, or with passwordless sudo)"
    );
}

/// Starts PostgreSQL again however the test ends, so later tests find it up.
struct StartOnDrop;

impl Drop for StartOnDrop {
    fn drop(&mut self) {
        if !pg_ctl_ok("status") {
            pg_ctl_ok("start");
        }
    }
}

/// Three steps in a row and a fan-out beside them, each a step that takes a while; the
/// probe keys start with `prefix`.
fn flow(prefix: &str) -> String {
    format!(
        r#"
steps:
  a: {{ uses: test.probe, with: {{ key: {prefix}a, ms: 1500 }} }}
  b: {{ uses: test.probe, needs: [a], with: {{ key: {prefix}b, ms: 1500 }} }}
  c: {{ uses: test.probe, needs: [b], with: {{ key: {prefix}c, ms: 3000 }} }}
  fan:
    uses: test.probe
    for_each: [1, 2, 3, 4, 5, 6]
    concurrency: 2
    with: {{ key: "{prefix}fan${{{{ item }}}}", ms: 700 }}
"#
    )
}

const KEYS: [&str; 9] = [
    "a", "b", "c", "fan1", "fan2", "fan3", "fan4", "fan5", "fan6",
];

fn no_cache(worker: Option<String>) -> EngineOptions {
    let mut o = EngineOptions {
        no_cache: true,
        ..EngineOptions::default()
    };
    if let Some(w) = worker {
        o.worker = w;
    }
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_ride_out_a_postgresql_restart_and_resume_after_an_outage() {
    let h = Harness::new(Db::Postgres).await;
    let _restart = StartOnDrop;

    // 1. A restart in the middle of the run, then an outage of 12 s — longer than the
    //    pool's 10 s wait for a connection, so only retrying statements carries the run
    //    over it: the run completes and every step ran exactly once.
    let engine = h.engine(no_cache(None));
    let plan = h.plan(&flow(""));
    let run =
        tokio::spawn(async move { engine.run(plan, Map::new(), RunControl::default()).await });
    tokio::time::sleep(Duration::from_millis(800)).await;
    pg_ctl("restart");
    pg_ctl("stop");
    tokio::time::sleep(Duration::from_secs(12)).await;
    pg_ctl("start");
    let report = run.await.unwrap().expect("the run outlives the restart");
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    for key in KEYS {
        assert_eq!(h.probe.calls(key), 1, "step {key} ran once");
    }
    let stored = h.store.get_run(&report.run_id).await.unwrap();
    assert_eq!(stored.status, RunStatus::Succeeded);

    // 2. The database stays down longer than the retry window: the running steps are
    //    stopped, the run ends with the store's error, and what it stored is kept. Once
    //    the database is back, the run resumes and runs only what had not finished. (The
    //    first engine names a dead process of this host, as a `mediaflow run` that gave up
    //    leaves it.)
    let short = h.store.clone().with_retry_window(Duration::from_secs(2));
    let host = mediaflow_engine::worker_id();
    let dead = format!("{}:999999999", host.rsplit_once(':').unwrap().0);
    let engine = Engine::new(short, h.artifacts.clone(), no_cache(Some(dead)));
    let plan = h.plan(&flow("x"));
    let run =
        tokio::spawn(async move { engine.run(plan, Map::new(), RunControl::default()).await });
    // Take the database away while `b` runs (`a` is stored by then).
    let waiting = Instant::now();
    while h.probe.calls("xb") == 0 {
        assert!(
            waiting.elapsed() < Duration::from_secs(20),
            "step b never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pg_ctl("stop");
    let stopped = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the run ends once its retries run out")
        .unwrap();
    let gave_up_after = stopped.elapsed();
    match ended {
        Err(EngineError::Store(StoreError::Query(e))) => {
            assert!(mediaflow_store::is_transient(&e), "{e}")
        }
        other => panic!("expected the store's error, got {other:?}"),
    }
    pg_ctl("start");
    let runs = h.store.list_runs(&Default::default()).await.unwrap();
    let run = runs
        .iter()
        .find(|r| r.status == RunStatus::Running)
        .expect("the interrupted run is stored as running");
    let steps = h.store.steps(&run.id).await.unwrap();
    let a = steps.iter().find(|s| s.step_id == "a").unwrap();
    assert_eq!(a.status, StepStatus::Succeeded, "a's result was kept");

    let resumed = h.resume(&run.id, RunControl::default()).await;
    assert_eq!(resumed.status, RunStatus::Succeeded, "{resumed:#?}");
    assert_eq!(h.probe.calls("xa"), 1, "a is not run again");
    assert_eq!(h.probe.calls("xb"), 2, "b was interrupted and runs again");
    assert_eq!(h.probe.calls("xc"), 1);
    for key in &KEYS[3..] {
        let n = h.probe.calls(&format!("x{key}"));
        assert!((1..=2).contains(&n), "x{key} ran {n} times");
    }
    eprintln!("the run gave up {gave_up_after:?} after the database stopped");
    h.cleanup().await;
}

/// SQLite: another connection holds the database locked for longer than the busy timeout
/// (10 s): writes fail with `SQLITE_BUSY`, are retried, and the run completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_ride_out_a_locked_sqlite_file() {
    use sqlx::Connection;
    let h = Harness::new(Db::Sqlite).await;
    let engine = h.engine(no_cache(None));
    let plan = h.plan(&flow(""));
    let mut locker = sqlx::SqliteConnection::connect(&h.url).await.unwrap();
    sqlx::raw_sql("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .unwrap();
    let run =
        tokio::spawn(async move { engine.run(plan, Map::new(), RunControl::default()).await });
    tokio::time::sleep(Duration::from_secs(12)).await;
    sqlx::raw_sql("COMMIT").execute(&mut locker).await.unwrap();
    let report = run.await.unwrap().expect("the run outlives the lock");
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    for key in KEYS {
        assert_eq!(h.probe.calls(key), 1, "step {key} ran once");
    }
    drop(locker);
    h.cleanup().await;
}

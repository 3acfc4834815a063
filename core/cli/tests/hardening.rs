//! The `mediaflow` binary against an unlucky operator: a database file that is not one,
//! and many processes opening a new data dir at once.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{bin, run};

fn workflows() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows")
}

#[test]
fn a_file_that_is_not_a_database_is_named_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mediaflow.db");
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&db, &noise).unwrap();
    let (code, _, err) = run(bin().arg("--data-dir").arg(dir.path()).arg("runs"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("{} is not a SQLite database", db.display())),
        "{err}"
    );
    assert!(err.contains("move it away"), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), noise, "the file is left alone");
}

/// Twelve processes opening one new data dir raced to migrate it ("table workflows
/// already exists"). The race is timing-dependent, so three new data dirs are tried.
#[test]
fn twelve_runs_started_together_on_a_new_data_dir_all_succeed() {
    for _ in 0..3 {
        twelve_runs_on_a_new_data_dir();
    }
}

fn twelve_runs_on_a_new_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..12)
        .map(|i| {
            bin()
                .arg("--data-dir")
                .arg(dir.path())
                .args(["run", "--json", "--input"])
                .arg(format!(
                    "out={}",
                    dir.path().join(format!("brief-{i}.md")).display()
                ))
                .arg(workflows().join("morning-brief.yaml"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("mediaflow starts")
        })
        .collect();
    let mut failures = Vec::new();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        if !out.status.success() {
            failures.push(format!("run {i}: {}", String::from_utf8_lossy(&out.stderr)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let (code, out, _) = run(bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["runs", "--status", "succeeded"]));
    assert_eq!(code, 0);
    assert_eq!(out.matches("morning-brief").count(), 12, "{out}");
}

#[test]
fn control_sequences_from_steps_never_reach_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("hostile.yaml");
    // A step's output and a failing step's message, both carrying escape sequences that
    // would clear the screen and retitle the window.
    std::fs::write(
        &wf,
        "name: hostile\nsteps:\n  say:\n    uses: text.template\n    with:\n      template: \"before\\e[2J\\e]0;pwned\\aafter\"\n  boom:\n    uses: json.pick\n    with:\n      value: {}\n      path: \"/missing\\e[31m\"\noutputs:\n  said: ${{ steps.say.outputs.text }}\n",
    )
    .unwrap();
    let (code, out, err) = run(bin().arg("--data-dir").arg(dir.path()).arg("run").arg(&wf));
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("said: beforeafter"), "{out}");
    assert!(
        !out.contains('\u{1b}') && !err.contains('\u{1b}'),
        "{out:?}\n{err:?}"
    );
}

/// `file.read` is not cacheable: a file that changed between runs is read again, never
/// answered from the cache with the old text.
#[test]
fn a_changed_file_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let story = dir.path().join("story.txt");
    let wf = dir.path().join("read.yaml");
    std::fs::write(
        &wf,
        "name: read\ninputs:\n  path: { type: string }\nsteps:\n  r:\n    uses: file.read\n    with:\n      path: ${{ inputs.path }}\n  shout:\n    uses: text.template\n    with:\n      template: \"{{ t | upper }}\"\n      vars: { t: \"${{ steps.r.outputs.text }}\" }\noutputs:\n  text: ${{ steps.shout.outputs.text }}\n",
    )
    .unwrap();
    let run_once = || {
        let (code, out, err) = run(bin()
            .arg("--data-dir")
            .arg(dir.path())
            .args(["run", "--json", "--input"])
            .arg(format!("path={}", story.display()))
            .arg(&wf));
        assert_eq!(code, 0, "{err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    std::fs::write(&story, "first draft").unwrap();
    let first = run_once();
    assert_eq!(first["outputs"]["text"], "FIRST DRAFT");
    std::fs::write(&story, "final copy").unwrap();
    let second = run_once();
    assert_eq!(second["outputs"]["text"], "FINAL COPY", "{second:#}");
    assert_eq!(second["steps"]["r"]["status"], "succeeded");
}

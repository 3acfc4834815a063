//! The `mediaflow` binary against an unlucky operator: a database file that is not one,
//! and many processes opening a new data dir at once.

mod common;

use std::process::Stdio;

use common::{bin, run, workflows};

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
    let (code, out, _) =
        run(bin()
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

/// Plugin executables are looked for in a fixed order (beside `mediaflow`, then
/// `MEDIAFLOW_PLUGINS_DIR`; `PATH` only when asked), only by commands that need plugins,
/// and run with a scrubbed environment.
#[test]
fn plugin_discovery_runs_only_what_it_should_with_a_scrubbed_environment() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let spy_dir = dir.path().join("bin");
    std::fs::create_dir(&spy_dir).unwrap();
    let ran = dir.path().join("ran.txt");
    let env_seen = dir.path().join("env.txt");
    let spy = spy_dir.join("mediaflow-spy");
    std::fs::write(
        &spy,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\nenv > '{}'\nexit 1\n",
            ran.display(),
            env_seen.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&spy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        spy_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let data = dir.path().join("data");
    let mediaflow = |args: &[&str]| {
        let mut cmd = bin();
        cmd.env("PATH", &path)
            .env("DATABASE_URL", "postgres://desk:hunter2@db/news")
            .env("MEDIAFLOW_API_TOKEN", "hunter3")
            .env("MEDIAFLOW_LLM_MEMORY_MB", "512")
            .arg("--data-dir")
            .arg(&data)
            .args(args);
        cmd
    };

    // On PATH but not asked for: never run, not even by `plugins`.
    let (code, _, err) = run(&mut mediaflow(&["plugins"]));
    assert_eq!(code, 0, "{err}");
    assert!(!ran.exists(), "a mediaflow-* on PATH ran uninvited");

    // In a plugin directory: a command that needs no plugins does not run it.
    let (code, _, err) = run(mediaflow(&["runs"]).env("MEDIAFLOW_PLUGINS_DIR", &spy_dir));
    assert_eq!(code, 0, "{err}");
    assert!(!ran.exists(), "`runs` started plugin executables");

    // `plugins` describes it, with an environment that holds no secrets.
    let (code, _, err) = run(mediaflow(&["plugins"]).env("MEDIAFLOW_PLUGINS_FROM_PATH", "1"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(&ran).unwrap().trim(),
        "--describe",
        "asked to describe itself, once"
    );
    assert!(
        err.contains("mediaflow-spy"),
        "a broken plugin is named: {err}"
    );
    let env = std::fs::read_to_string(&env_seen).unwrap();
    assert!(
        !env.contains("hunter2") && !env.contains("hunter3") && !env.contains("DATABASE_URL"),
        "{env}"
    );
    assert!(env.contains("MEDIAFLOW_LLM_MEMORY_MB=512"), "{env}");
}

/// Two executables offering one plugin name: the first in search order is kept and the
/// second refused, naming both files.
#[test]
fn a_second_plugin_of_one_name_is_refused_naming_both_files() {
    let beside = common::built_beside("mediaflow-llm");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("mediaflow-llm-copy");
    std::os::unix::fs::symlink(&beside, &copy).unwrap();
    let (code, out, err) = run(bin()
        .env("MEDIAFLOW_PLUGINS_DIR", dir.path())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["plugins", "llm.generate"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "two plugins are named `llm.generate`: {} and {}",
            beside.display(),
            copy.display()
        )),
        "{err}"
    );
    assert!(out.contains(&beside.display().to_string()), "{out}");
}

/// `MEDIAFLOW_FILES_ROOT` and `root:` confine file steps; `max_bytes` refuses big files.
#[test]
fn file_steps_stay_inside_their_root_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("newsroom");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("story.txt"), "council approves budget").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "hunter2").unwrap();
    let wf = dir.path().join("files.yaml");
    std::fs::write(
        &wf,
        "name: files\nsteps:\n  inside:  { uses: file.read, with: { path: story.txt } }\n  escape:  { uses: file.read, with: { path: ../secret.txt } }\n  absolute: { uses: file.read, with: { path: /etc/hostname } }\n  big:     { uses: file.read, with: { path: story.txt, max_bytes: 5 } }\n  write:   { uses: file.write, with: { path: ../planted.txt, content: x } }\n",
    )
    .unwrap();
    let (code, out, err) = run(bin()
        .env("MEDIAFLOW_FILES_ROOT", &root)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["run", "--json"])
        .arg(&wf));
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["steps"]["inside"]["outputs"]["text"],
        "council approves budget"
    );
    for step in ["escape", "absolute", "write"] {
        assert_eq!(
            v["steps"][step]["error"]["code"], "path_outside_root",
            "{step}: {:#}",
            v["steps"][step]
        );
    }
    assert_eq!(v["steps"]["big"]["error"]["code"], "too_large");
    assert!(!dir.path().join("planted.txt").exists());
    assert!(!out.contains("hunter2"));
}

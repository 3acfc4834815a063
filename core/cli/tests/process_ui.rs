//! What `mediaflow validate` prints for problems that a plugin *process* finds (its
//! `validate` answer over the plugin protocol), compared with golden files in
//! `tests/ui/process/` (`MEDIAFLOW_BLESS=1` rewrites them). The plugin processes are the
//! workspace's own, found beside the `mediaflow` binary.

mod common;

use std::path::Path;

use common::{bin, run};

fn require_plugin(exe: &str) {
    common::built_beside(exe);
}

#[test]
fn process_plugin_problems_are_shown_at_their_line() {
    require_plugin("mediaflow-llm");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join("tests/ui/process");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/ui/process exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty());
    let data = tempfile::tempdir().unwrap();
    let bless = std::env::var_os("MEDIAFLOW_BLESS").is_some();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let (code, _, err) = run(bin()
            .current_dir(&dir)
            .env("MEDIAFLOW_DATA_DIR", data.path())
            .arg("validate")
            .arg(&name));
        assert_eq!(code, 1, "{name} must not compile:\n{err}");
        let expected_path = case.with_extension("stderr");
        if bless {
            std::fs::write(&expected_path, &err).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if err != expected {
            failures.push(format!("--- {name}: expected\n{expected}\n--- got\n{err}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

//! WebAssembly plugins from the command line: scaffold, build and run a new plugin; the
//! example plugins from a plugin directory by name.

mod common;

use std::path::{Path, PathBuf};

use common::{bin, run};
use mediaflow_tests::guests::guest;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn a_new_plugin_is_scaffolded_built_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (code, out, err) = run(bin()
        .arg("plugin")
        .arg("new")
        .arg("word-count")
        .arg("--dir")
        .arg(dir.path()));
    assert_eq!(code, 0, "{out}{err}");
    let crate_dir = dir.path().join("word-count");
    assert!(crate_dir.join("src/lib.rs").is_file());
    let (code, _, err) = run(bin()
        .arg("plugin")
        .arg("new")
        .arg("word-count")
        .arg("--dir")
        .arg(dir.path()));
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");

    // Share the guest build directory so the SDK's dependencies compile once.
    let target = guest("trivial")
        .ancestors()
        .nth(3)
        .expect("wasm-guests dir")
        .to_owned();
    let (code, out, err) = run(bin()
        .env("CARGO_TARGET_DIR", &target)
        .arg("plugin")
        .arg("build")
        .arg(&crate_dir));
    assert_eq!(code, 0, "{out}{err}");
    let wasm = PathBuf::from(out.trim());
    assert_eq!(wasm, crate_dir.join("word_count.wasm"));

    let (code, out, err) = run(bin()
        .arg("--data-dir")
        .arg(&data)
        .arg("run")
        .arg(crate_dir.join("workflow.yaml"))
        .arg("--json")
        .arg("-i")
        .arg("text=The council approved a new budget for the city schools"));
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    // The template's workflow counts words of at least 4 letters: council, approved, budget,
    // city, schools.
    assert_eq!(v["outputs"]["words"], 5, "{v}");
    // The compiled component was cached on disk by its sha256, beside the cache's key.
    let cached = std::fs::read_dir(data.join("wasm-cache"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        })
        .count();
    assert_eq!(cached, 1);
    assert!(data.join("wasm-cache/mac.key").is_file());
}

#[test]
fn example_plugins_run_by_name_from_a_plugin_directory() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    for name in ["ap-headline", "keywords", "profanity"] {
        let src = guest(name);
        std::fs::copy(&src, plugins.join(src.file_name().unwrap())).unwrap();
    }
    let (code, out, err) = run(bin()
        .env("MEDIAFLOW_PLUGINS_DIR", &plugins)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("plugins")
        .arg("text.ap_headline"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("sandboxed (WebAssembly)"), "{out}");
    assert!(out.contains("ap_headline.wasm"), "{out}");

    let (code, out, err) = run(bin()
        .env("MEDIAFLOW_PLUGINS_DIR", &plugins)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("run")
        .arg(repo().join("workflows/story-desk.yaml"))
        .arg("--json"));
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["outputs"]["headline"],
        "Floods Close I-95 as NASA and the U.S. Weather Service Warn of More Rain",
        "{v}"
    );
    assert_eq!(v["outputs"]["removed"], serde_json::json!(["damn"]));
    let entities: Vec<&str> = v["outputs"]["entities"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert_eq!(
        entities[..2],
        ["National Weather Service", "North Carolina"],
        "{v}"
    );
    assert!(
        entities.contains(&"Roy Cooper") || entities.contains(&"Governor Roy Cooper"),
        "{entities:?}"
    );
}

#[test]
fn a_bad_plugin_reference_is_a_compile_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("wf.yaml");
    std::fs::write(&wf, "steps:\n  tag:\n    uses: wasm:missing.wasm\n").unwrap();
    let (code, _, err) = run(bin()
        .arg("--data-dir")
        .arg(dir.path())
        .arg("validate")
        .arg(&wf));
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot find WebAssembly plugin `missing.wasm`"),
        "{err}"
    );
    assert!(err.contains("wf.yaml:3:11"), "{err}");
}

//! Golden tests for diagnostics: each `ui/NAME.yaml` must fail to compile with exactly the
//! text in `ui/NAME.stderr`. Set `MEDIAFLOW_BLESS=1` to rewrite the expected files after an
//! intended change, then review the diff.

use std::path::Path;
use std::sync::Arc;

use mediaflow_tests::guests::guest;
use mediaflow_wasm_host::{WasmConfig, WasmLoader, WasmRuntime};
use mediaflow_workflow::compile_str;

#[test]
fn diagnostics_match_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    let mut registry = mediaflow_builtin::registry();
    // `uses: wasm:NAME.wasm` finds the example plugins, built from source.
    let guests = guest("ap-headline").parent().expect("guest dir").to_owned();
    let runtime = WasmRuntime::new(WasmConfig {
        plugin_dirs: vec![guests.clone()],
        ..WasmConfig::default()
    })
    .expect("wasm runtime");
    registry.add_loader("wasm", Arc::new(WasmLoader { runtime }));
    let guests = guests.display().to_string();
    let bless = std::env::var_os("MEDIAFLOW_BLESS").is_some();
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/ui exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 12,
        "at least 12 golden cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(case).unwrap();
        let rendered = match compile_str(&format!("ui/{name}"), &text, &registry) {
            Ok(_) => "(compiled without problems)\n".to_owned(),
            Err(mut d) => {
                // Machine-specific paths would make the files differ between checkouts.
                for p in &mut d.problems {
                    p.message = p.message.replace(&guests, "$WASM_GUESTS");
                    p.help = p.help.take().map(|h| h.replace(&guests, "$WASM_GUESTS"));
                }
                d.render(false)
            }
        };
        let expected_path = case.with_extension("stderr");
        if bless {
            std::fs::write(&expected_path, &rendered).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if rendered != expected {
            failures.push(format!(
                "--- {name}: expected\n{expected}\n--- got\n{rendered}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Found by mutating real workflows: a very long line made miette's renderer panic. Bad
/// input must never panic; the problem is still named by file, line and column.
#[test]
fn a_problem_on_a_very_long_line_is_reported_without_a_snippet() {
    let registry = mediaflow_builtin::registry();
    let long = "x".repeat(100_000);
    let text = format!(
        "steps:\n  a:\n    uses: text.templat\n    with:\n      template: \"{long}\"\n  b:\n    uses: text.template\n    with: {{ template: \"{long}\", colour: red }}\n"
    );
    let diagnostics = compile_str("long.yaml", &text, &registry).unwrap_err();
    let rendered = diagnostics.render(false);
    assert!(
        rendered.contains("(at long.yaml:8:100027; the line is too long"),
        "{rendered}"
    );
    // The problem on a short line keeps its snippet and caret.
    assert!(rendered.contains("╭─[long.yaml:3:11]"), "{rendered}");
    assert!(rendered.len() < 10_000, "{} bytes", rendered.len());
}

//! The editor schema (`mediaflow schema`), checked as a YAML language server would use it:
//! with an independent JSON Schema validator (boon, not the `jsonschema` crate mediaflow
//! itself uses), against every shipped workflow.

mod common;

use std::path::Path;

use common::{bin, run};
use serde_json::Value;

fn schema() -> Value {
    let data = tempfile::tempdir().unwrap();
    let (code, out, err) = run(bin().env("MEDIAFLOW_DATA_DIR", data.path()).arg("schema"));
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).expect("the schema is JSON")
}

fn compile(schema: Value) -> (boon::Schemas, boon::SchemaIndex) {
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler
        .add_resource("mediaflow.schema.json", schema)
        .expect("add the schema");
    let index = compiler
        .compile("mediaflow.schema.json", &mut schemas)
        .unwrap_or_else(|e| panic!("the schema does not compile: {e:#}"));
    (schemas, index)
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_shipped_workflow_is_valid_under_the_editor_schema() {
    let schema = schema();
    // The schema must know the plugin processes' settings, or this proves little.
    let rules = schema.to_string();
    for plugin in ["audio.transcribe", "llm.generate"] {
        assert!(
            rules.contains(&format!("\"const\":\"{plugin}\"")),
            "the schema has no rule for `{plugin}`: build the workspace's plugin processes first"
        );
    }
    let (schemas, index) = compile(schema);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let mut failures = Vec::new();
    for file in &files {
        if let Err(e) = schemas.validate(&yaml(file), index) {
            failures.push(format!("{}: {e:#}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_editor_schema_still_rejects_what_is_wrong() {
    let (schemas, index) = compile(schema());
    let bad = [
        // a misspelt step key
        "steps:\n  a: { uses: text.template, wiht: { template: x } }\n",
        // a setting the plugin does not have
        "steps:\n  a: { uses: text.template, with: { template: x, colour: red } }\n",
        // a literal of the wrong type where an expression would be fine
        "steps:\n  a: { uses: json.merge, with: { objects: [1, 2] } }\n",
        // an unknown permission
        "steps:\n  a: { uses: text.template, permissions: [network], with: { template: x } }\n",
    ];
    for text in bad {
        let doc: Value = serde_yaml::from_str(text).unwrap();
        assert!(
            schemas.validate(&doc, index).is_err(),
            "accepted a bad workflow:\n{text}"
        );
    }
    let good = "inputs: { n: integer }\nsteps:\n  a: { uses: json.merge, with: { objects: \"${{ inputs.n }}\", deep: \"${{ true }}\" } }\n";
    let doc: Value = serde_yaml::from_str(good).unwrap();
    assert!(
        schemas.validate(&doc, index).is_ok(),
        "expressions stand for any value"
    );
}

//! The recommender from the command line, as the README shows it: a generated newsroom,
//! `workflows/daily-recommendations.yaml` on it (with real `text.embed` vectors from
//! minilm-l6 for the content model), the stored lists, a re-import that adds nothing, and
//! `eval recommend --json`.

mod common;

use common::{bin, built_beside, run, workflows};
use serde_json::Value;

#[test]
fn daily_recommendations_on_a_generated_newsroom() {
    built_beside("mediaflow-onnx");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("reading");
    let (code, out, err) = run(bin()
        .args(["events", "generate", "--out"])
        .arg(&data)
        .args(["--users", "40", "--items", "60", "--events", "900"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("60 items"), "{out}");
    let cli = || {
        let mut c = bin();
        c.arg("--data-dir").arg(dir.path().join("state"));
        c
    };
    let (code, out, err) = run(cli()
        .args(["run", "--json", "--input"])
        .arg(format!("events={}", data.join("events.csv").display()))
        .arg("--input")
        .arg(format!("items={}", data.join("items.jsonl").display()))
        .arg(workflows().join("daily-recommendations.yaml")));
    assert_eq!(code, 0, "{err}\n{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["steps"]["embed"]["outputs"].as_array().map(Vec::len),
        Some(60)
    );
    let train = &v["steps"]["train"]["outputs"];
    assert_eq!(train["kind"], "hybrid");
    assert!(train["version"].as_str().unwrap().starts_with("hybrid-"));
    let rank = &v["steps"]["rank"]["outputs"];
    let users = rank["users"].as_u64().unwrap();
    assert!(users > 30, "{rank}");
    assert_eq!(rank["saved"].as_u64().unwrap(), users * 20);

    // The stored list of a reader, best first, each with its reason.
    let (code, out, err) = run(cli().args(["events", "recommendations", "u00001", "--json"]));
    assert_eq!(code, 0, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 20, "{out}");
    assert!(list
        .iter()
        .all(|r| !r["reason"].as_str().unwrap().is_empty()));
    let (code, out, _) = run(cli().args(["events", "recommendations", "u00001"]));
    assert_eq!(code, 0);
    assert!(out.contains("  1. "), "{out}");

    // Importing the same file again adds nothing.
    let (code, out, err) = run(cli()
        .args(["events", "import"])
        .arg(data.join("events.csv")));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("0 events added"), "{out}");

    // The offline evaluation, one row per model.
    let (code, out, err) = run(bin()
        .args(["eval", "recommend", "--json", "--ratings"])
        .arg(data.join("events.csv"))
        .arg("--items")
        .arg(data.join("items.jsonl")));
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let models: Vec<&str> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["model"].as_str().unwrap())
        .collect();
    assert_eq!(
        models,
        ["popularity", "itemknn", "als", "content", "hybrid"]
    );
    assert!(report["test_users"].as_u64().unwrap() > 30);
}

#[test]
fn an_events_file_that_cannot_be_read_names_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ratings.csv");
    std::fs::write(&file, "customer,film,stars,when\n1,2,3,4\n").unwrap();
    let (code, _, err) = run(bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["events", "import"])
        .arg(&file)
        .args(["--layout", "csv"]));
    assert_ne!(code, 0);
    assert!(
        err.contains("user") && err.contains("customer, film"),
        "{err}"
    );
    assert!(err.contains("--map"), "{err}");
}

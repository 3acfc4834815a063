//! The recommender's steps in real workflows, on SQLite and on PostgreSQL: events imported
//! (twice: nothing is added the second time), a malformed row reported by line with the rest
//! imported, events recorded from a workflow, a model trained and every user's top k stored
//! with reasons, never an item the user has read.

use std::collections::{HashMap, HashSet};

use mediaflow_recommend::synth::{generate, write, SynthOptions};
use mediaflow_store::RunStatus;
use mediaflow_tests::{step_error as error, step_outputs as outputs, Db, Harness};
use serde_json::json;

const WORKFLOW: &str = r#"
name: reco
inputs:
  events: { type: string }
  items: { type: string }
  model: { type: string, default: hybrid }
steps:
  import:
    uses: events.import
    with:
      events: ${{ inputs.events }}
      items: ${{ inputs.items }}
  train:
    uses: recommend.train
    needs: [import]
    with:
      model: ${{ inputs.model }}
      als: { factors: 16, iterations: 5 }
  rank:
    uses: recommend.rank
    with:
      model: ${{ steps.train.outputs.model }}
      k: 20
      save: true
"#;

async fn harness(db: Db) -> Harness {
    let mut h = Harness::new(db).await;
    h.register(mediaflow_recommend::plugins());
    h
}

async fn import_train_rank(db: Db) {
    let h = harness(db).await;
    let dir = h.dir.path().join("reading");
    let options = SynthOptions {
        users: 60,
        items: 80,
        events: 1500,
        ..SynthOptions::default()
    };
    let (items, events) = generate(&options);
    write(&dir, &items, &events).unwrap();
    // A malformed row in the middle: its line is reported, the rest imported.
    let path = dir.join("events.csv");
    let mut text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut broken: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    broken.insert(3, "u00001,a00002,view,not-a-time,1".into());
    text = broken.join("\n") + "\n";
    std::fs::write(&path, &text).unwrap();
    let inputs = json!({
        "events": path.display().to_string(),
        "items": dir.join("items.jsonl").display().to_string(),
    });
    let report = h.run(WORKFLOW, inputs.clone()).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    let import = outputs(&report, "import");
    assert_eq!(import["skipped_count"], 1);
    assert_eq!(import["skipped"][0]["line"], 4, "{import}");
    assert!(import["skipped"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("not-a-time"));
    let distinct: HashSet<_> = events
        .iter()
        .map(|e| (&e.user, &e.item, &e.kind, e.ts))
        .collect();
    assert_eq!(import["added"], distinct.len() as u64, "{import}");
    assert_eq!(import["items_changed"], 80);
    assert_eq!(import["changed_items"].as_array().unwrap().len(), 80);
    assert_eq!(
        h.store.interaction_count().await.unwrap(),
        distinct.len() as i64
    );

    let rank = outputs(&report, "rank");
    let users: HashSet<&String> = events.iter().map(|e| &e.user).collect();
    assert_eq!(rank["users"], users.len());
    assert_eq!(rank["saved"], users.len() * 20);
    // Every list: 20 distinct items nobody on it has read, each with a reason.
    let mut read: HashMap<&str, HashSet<&str>> = HashMap::new();
    for e in &events {
        read.entry(&e.user).or_default().insert(&e.item);
    }
    for list in rank["recommendations"].as_array().unwrap() {
        let user = list["user"].as_str().unwrap();
        let items: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["item"].as_str().unwrap())
            .collect();
        assert_eq!(items.len(), 20);
        assert_eq!(items.iter().collect::<HashSet<_>>().len(), 20);
        for i in &items {
            assert!(!read[user].contains(i), "{user} already read {i}");
        }
        for i in list["items"].as_array().unwrap() {
            assert!(!i["reason"].as_str().unwrap().is_empty());
        }
    }
    let stored = h.store.recommendations_for("u00001").await.unwrap();
    if read.contains_key("u00001") {
        assert_eq!(stored.len(), 20);
        assert_eq!(stored[0].row.position, 1);
        assert!(stored.windows(2).all(|w| w[0].row.score >= w[1].row.score));
    }

    // The same files again: nothing new.
    let again = h.run(WORKFLOW, inputs).await;
    assert_eq!(again.status, RunStatus::Succeeded, "{again:#?}");
    let import = outputs(&again, "import");
    assert_eq!(import["added"], 0);
    assert_eq!(import["duplicates"], distinct.len() as u64);
    assert_eq!(import["items_changed"], 0);
    assert_eq!(
        h.store.interaction_count().await.unwrap(),
        distinct.len() as i64
    );
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_train_rank_sqlite() {
    import_train_rank(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_train_rank_postgres() {
    import_train_rank(Db::Postgres).await;
}

const RECORD: &str = r#"
name: record
inputs:
  events: { type: list }
steps:
  record:
    uses: events.record
    with:
      events: ${{ inputs.events }}
  train:
    uses: recommend.train
    needs: [record]
    with: { model: itemknn, kind_weights: { like: 0 } }
  more:
    uses: recommend.rank
    with:
      model: ${{ steps.train.outputs.model }}
      item: ${{ inputs.events[0].item }}
      k: 3
  strangers:
    uses: recommend.rank
    with:
      model: ${{ steps.train.outputs.model }}
      users: [nobody-knows-me]
      k: 2
  readers:
    uses: recommend.rank
    with:
      model: ${{ steps.train.outputs.model }}
      users: [ann, ann]
      k: 5
"#;

async fn record_and_rank(db: Db) {
    let h = harness(db).await;
    let events = json!([
        { "user": "ann", "item": "budget", "time": "2026-12-01T08:00:00Z" },
        { "user": "ann", "item": "tax", "time": "2026-12-01T08:05:00Z", "kind": "like" },
        { "user": "bob", "item": "budget", "time": 1764576000 },
        { "user": "bob", "item": "tax", "time": 1764576300 },
        { "user": "cat", "item": "cup-final", "time": 1764576600 },
        { "user": "ann", "item": "budget", "time": "2026-12-01T08:00:00Z" }
    ]);
    let report = h.run(RECORD, json!({ "events": events })).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:#?}");
    let record = outputs(&report, "record");
    assert_eq!(
        (record["added"].clone(), record["duplicates"].clone()),
        (json!(5), json!(1))
    );
    // More like "budget": "tax", read by the same people.
    let more = outputs(&report, "more");
    assert_eq!(more["similar"][0]["item"], "tax", "{more}");
    assert!(more["similar"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("budget"));
    // Someone the model has never seen gets what is popular.
    let strangers = outputs(&report, "strangers");
    let list = &strangers["recommendations"][0]["items"];
    assert_eq!(list.as_array().unwrap().len(), 2, "{strangers}");
    assert!(list[0]["reason"].as_str().unwrap().starts_with("popular"));
    // Ann liked "tax", a kind this model gives no weight, so the model never saw it; she
    // has still read it, and a user named twice gets one list.
    let readers = outputs(&report, "readers");
    let lists = readers["recommendations"].as_array().unwrap();
    assert_eq!(lists.len(), 1, "{readers}");
    let items: Vec<&str> = lists[0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["item"].as_str().unwrap())
        .collect();
    // Only cup-final is left once what ann read is taken out (k: 5 asks for more).
    assert_eq!(items, ["cup-final"], "{readers}");

    // A bad event fails the step with its index, and stores nothing.
    let bad = json!([{ "user": "dan", "item": "x", "time": "soon" }]);
    let report = h.run(RECORD, json!({ "events": bad })).await;
    assert_eq!(report.status, RunStatus::Failed);
    let err = error(&report, "record");
    assert!(err.contains("events[0]") && err.contains("soon"), "{err}");
    assert_eq!(h.store.interaction_count().await.unwrap(), 5);
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_and_rank_sqlite() {
    record_and_rank(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_and_rank_postgres() {
    record_and_rank(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_without_events_says_how_to_get_some() {
    let h = harness(Db::Sqlite).await;
    let report = h
        .run(
            "name: t\nsteps:\n  train:\n    uses: recommend.train\n    with: {}\n",
            json!({}),
        )
        .await;
    assert_eq!(report.status, RunStatus::Failed);
    let err = error(&report, "train");
    assert!(
        err.contains("no_events") && err.contains("events import"),
        "{err}"
    );
    h.cleanup().await;
}

//! The awkward cases: malformed import rows, duplicate events, users and items the model has
//! never seen, users with a single event, items without text, new items with no readers,
//! and damaged model files.

use std::collections::HashMap;
use std::path::Path;

use mediaflow_recommend::import::{read_events, read_items, EventOptions, Layout};
use mediaflow_recommend::model::RecommendError;
use mediaflow_recommend::{Dataset, KindWeights, ModelKind, Recommender, TrainConfig};
use mediaflow_store::{Interaction, ItemRecord};

fn ev(user: &str, item: &str, ts: i64) -> Interaction {
    Interaction {
        user: user.into(),
        item: item.into(),
        kind: "view".into(),
        ts,
        weight: 1.0,
        source: None,
    }
}

fn item(id: &str, title: Option<&str>, section: Option<&str>, tags: &[&str]) -> ItemRecord {
    ItemRecord {
        id: id.into(),
        title: title.map(str::to_owned),
        body: None,
        published_at: None,
        section: section.map(str::to_owned),
        tags: tags.iter().map(|t| t.to_string()).collect(),
    }
}

fn train(kind: ModelKind, events: &[Interaction], items: &[ItemRecord]) -> Recommender {
    let data = Dataset::new(events, items, &KindWeights::new());
    let mut config = TrainConfig {
        model: kind,
        ..TrainConfig::default()
    };
    config.als.factors = 8;
    Recommender::train(&data, &config, &HashMap::new(), 1_000_000).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn malformed_rows_are_reported_by_line_and_the_rest_imported() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(
        dir.path(),
        "events.csv",
        "user,item,kind,time,weight\n\
         ann,a1,view,2026-12-01T08:00:00Z,1\n\
         ann,a2,view,yesterday,1\n\
         ,a3,view,1764576000,1\n\
         bob,a1,like,1764576000,-2\n\
         bob,a2\n\
         \n\
         cat,a3,share,1764576000,2\n",
    );
    let got = read_events(&csv, &EventOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(got.rows.len(), 2);
    assert_eq!(
        (got.rows[0].user.as_str(), got.rows[1].user.as_str()),
        ("ann", "cat")
    );
    let lines: Vec<u64> = got.skipped.iter().map(|s| s.line).collect();
    assert_eq!(lines, vec![3, 4, 5, 6], "{:?}", got.skipped);
    assert!(got.skipped[0].reason.contains("yesterday"));
    assert!(got.skipped[1].reason.contains("no user"));
    assert!(got.skipped[2].reason.contains("-2"));

    let jsonl = write(
        dir.path(),
        "events.jsonl",
        "{\"user\":\"ann\",\"item\":\"a1\",\"time\":1764576000}\n\
         {not json\n\
         {\"user\":\"bob\",\"item\":\"a1\"}\n\
         {\"user\":\"bob\",\"item\":\"a2\",\"time\":\"2026-12-01\",\"kind\":\"like\",\"weight\":3}\n",
    );
    let got = read_events(&jsonl, &EventOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(got.rows.len(), 2);
    assert_eq!(got.rows[1].kind, "like");
    assert_eq!(got.rows[1].weight, 3.0);
    let lines: Vec<u64> = got.skipped.iter().map(|s| s.line).collect();
    assert_eq!(lines, vec![2, 3]);
    assert!(got.skipped[1].reason.contains("no time"));
}

#[test]
fn a_mapping_names_columns_and_a_missing_column_fails_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(
        dir.path(),
        "ratings.txt",
        "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n",
    );
    let options = EventOptions {
        map: mediaflow_recommend::import::parse_map(
            "user=userId,item=movieId,weight=rating,time=timestamp",
        )
        .unwrap(),
        ..EventOptions::default()
    };
    let got = read_events(&csv, &options, &mut |_| {}).unwrap();
    assert_eq!(got.rows[0].item, "31");
    assert_eq!(got.rows[0].ts, 1_260_759_144_000);
    assert_eq!(got.rows[0].weight, 2.5);
    let options = EventOptions {
        map: mediaflow_recommend::import::parse_map("user=customer").unwrap(),
        ..EventOptions::default()
    };
    let err = read_events(&csv, &options, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("customer") && err.contains("userId"), "{err}");
    // MovieLens u.data: no header, columns by number.
    let udata = write(
        dir.path(),
        "u.data",
        "196\t242\t3\t881250949\n186\t302\tx\t891717742\n",
    );
    let got = read_events(&udata, &EventOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(got.rows.len(), 1);
    assert_eq!(
        (got.rows[0].kind.as_str(), got.rows[0].weight),
        ("rating", 3.0)
    );
    assert_eq!(got.skipped[0].line, 2);
    // A file without a header cannot be mapped by column names.
    let options = EventOptions {
        map: mediaflow_recommend::import::parse_map("user=userId").unwrap(),
        ..EventOptions::default()
    };
    let err = read_events(&udata, &options, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no header row") && err.contains("userId"),
        "{err}"
    );
}

#[test]
fn json_lines_take_every_name_a_field_goes_by() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = write(
        dir.path(),
        "events.jsonl",
        concat!(
            r#"{"userId": "u1", "movieId": "m1", "timestamp": 881250949, "rating": 4}"#,
            "\n",
            r#"{"user_id": "u2", "article": "a9", "ts": "2026-01-02", "type": "like"}"#,
            "\n",
        ),
    );
    let got = read_events(&jsonl, &EventOptions::default(), &mut |_| {}).unwrap();
    assert!(got.skipped.is_empty(), "{:?}", got.skipped);
    let rows: Vec<(&str, &str, &str, f64)> = got
        .rows
        .iter()
        .map(|r| (r.user.as_str(), r.item.as_str(), r.kind.as_str(), r.weight))
        .collect();
    assert_eq!(rows, [("u1", "m1", "view", 4.0), ("u2", "a9", "like", 1.0)]);
    assert_eq!(got.rows[0].ts, 881_250_949_000);
}

#[test]
fn items_files_and_movielens_items() {
    let dir = tempfile::tempdir().unwrap();
    let items = write(
        dir.path(),
        "items.jsonl",
        "{\"id\":\"a1\",\"title\":\"Budget\",\"section\":\"politics\",\"tags\":[\"tax\"]}\n\
         {\"title\":\"no id\"}\n\
         {\"id\":\"a2\"}\n",
    );
    let got = read_items(&items, Layout::Auto, &HashMap::new()).unwrap();
    assert_eq!(got.rows.len(), 2);
    assert_eq!(got.rows[0].tags, vec!["tax"]);
    assert_eq!(got.skipped[0].line, 2);
    write(dir.path(), "u.genre", "unknown|0\nAction|1\nComedy|2\n");
    let uitem = write(
        dir.path(),
        "u.item",
        "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|1\n2|broken\n",
    );
    let got = read_items(&uitem, Layout::Auto, &HashMap::new()).unwrap();
    assert_eq!(got.rows[0].tags, vec!["Comedy"]);
    assert_eq!(got.rows[0].title.as_deref(), Some("Toy Story (1995)"));
    assert_eq!(got.skipped[0].line, 2);
}

fn newsroom() -> (Vec<Interaction>, Vec<ItemRecord>) {
    let events = vec![
        ev("ann", "budget", 1),
        ev("ann", "tax", 2),
        ev("ann", "budget", 3), // a duplicate read
        ev("bob", "budget", 4),
        ev("bob", "tax", 5),
        ev("bob", "rates", 6),
        ev("cat", "cup", 7),
        ev("cat", "league", 8),
        ev("dan", "cup", 9),
        ev("eve", "unlisted", 10), // an item the catalogue does not know
    ];
    let items = vec![
        item("budget", Some("Budget day"), Some("politics"), &["tax"]),
        item("tax", Some("Tax cuts"), Some("politics"), &["tax"]),
        item("rates", Some("Rates rise"), Some("business"), &["economy"]),
        item("cup", Some("Cup final"), Some("sport"), &["football"]),
        item("league", Some("League table"), Some("sport"), &["football"]),
        // No text at all, but a section: content can still place it.
        item("derby", None, Some("sport"), &["football"]),
        // Nothing: no text, no section, no tags, no readers.
        item("blank", None, None, &[]),
    ];
    (events, items)
}

#[test]
fn every_model_trains_and_ranks_on_awkward_data() {
    let (events, items) = newsroom();
    for kind in ModelKind::ALL {
        let model = train(kind, &events, &items);
        // A user with one event never gets that item back.
        let dan = model.recommend("dan", 5);
        assert!(dan.iter().all(|r| r.item != "cup"), "{kind}: {dan:?}");
        // A user the model has never seen gets a list, with reasons.
        let stranger = model.recommend("nobody", 3);
        assert_eq!(stranger.len(), 3, "{kind}");
        assert!(stranger.iter().all(|r| !r.reason.is_empty()));
        if kind != ModelKind::Hybrid {
            // A model that knows nothing of them scores every item 0: the list is the most
            // read items (budget, tax and cup, two readers each), not an arbitrary order.
            let ids: Vec<&str> = stranger.iter().map(|r| r.item.as_str()).collect();
            assert_eq!(ids, ["budget", "tax", "cup"], "{kind}: {stranger:?}");
            assert!(
                stranger.iter().all(|r| r.reason.starts_with("popular")),
                "{kind}: {stranger:?}"
            );
        }
        // Asked for more than anyone has read, the list goes on into items nobody read
        // (derby, blank): it is short only when the catalogue runs out.
        let all = model.recommend("nobody", 100);
        assert_eq!(all.len(), model.items.len(), "{kind}: {all:?}");
        assert!(all.iter().any(|r| r.item == "blank"), "{kind}: {all:?}");
        // The item the catalogue does not know is an item all the same.
        assert!(model.items.get("unlisted").is_some());
        assert!(matches!(
            model.more_like("missing", 3),
            Err(RecommendError::UnknownItem(_))
        ));
        // A round trip through the artifact format keeps the lists.
        let back = Recommender::from_bytes(&model.to_bytes().unwrap()).unwrap();
        assert_eq!(
            back.recommend("ann", 4),
            model.recommend("ann", 4),
            "{kind}"
        );
    }
}

#[test]
fn training_stops_when_asked() {
    let (events, items) = newsroom();
    let data = Dataset::new(&events, &items, &KindWeights::new());
    for kind in [ModelKind::Als, ModelKind::Itemknn, ModelKind::Hybrid] {
        let config = TrainConfig {
            model: kind,
            ..TrainConfig::default()
        };
        let got = Recommender::train_until(&data, &config, &HashMap::new(), 1, &|| true);
        assert!(matches!(got, Err(RecommendError::Cancelled)), "{kind}");
        assert!(Recommender::train_until(&data, &config, &HashMap::new(), 1, &|| false).is_ok());
    }
}

#[test]
fn new_items_and_items_without_text_get_content_neighbours() {
    let (events, items) = newsroom();
    let content = train(ModelKind::Content, &events, &items);
    // "derby" has no text and no readers; its section and tags put it next to cup and league.
    let more = content.more_like("derby", 2).unwrap();
    let ids: Vec<&str> = more.iter().map(|r| r.item.as_str()).collect();
    assert!(ids.contains(&"cup") && ids.contains(&"league"), "{ids:?}");
    // Cat reads sport; the hybrid offers the unread sport story though nobody has read it.
    let hybrid = train(ModelKind::Hybrid, &events, &items);
    let cat = hybrid.recommend("cat", 3);
    assert_eq!(cat[0].item, "derby", "{cat:?}");
    assert!(cat[0].reason.contains("similar to"), "{cat:?}");
    // Ann reads politics: "because you read" names her reading.
    let ann = hybrid.recommend("ann", 1);
    assert_eq!(ann[0].item, "rates", "{ann:?}");
    assert!(ann[0].reason.contains("Budget day") || ann[0].reason.contains("Tax cuts"));
}

#[test]
fn a_damaged_model_file_is_refused() {
    let (events, items) = newsroom();
    let bytes = train(ModelKind::Als, &events, &items).to_bytes().unwrap();
    assert!(matches!(
        Recommender::from_bytes(b"PK\x03\x04 a zip file"),
        Err(RecommendError::NotAModel)
    ));
    assert!(matches!(
        Recommender::from_bytes(&bytes[..bytes.len() / 2]),
        Err(RecommendError::Corrupt(_))
    ));
    // A model of the format before the popularity fallback: train it again.
    let mut old = bytes.clone();
    old[..8].copy_from_slice(b"MFRECv1\n");
    let err = Recommender::from_bytes(&old).unwrap_err();
    assert!(matches!(err, RecommendError::OldFormat), "{err}");
    assert!(err.to_string().contains("train it again"));
}

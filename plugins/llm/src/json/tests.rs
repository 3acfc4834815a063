use serde_json::{json, Value};

use super::{compile, Cursor};

fn cursor(schema: &Value) -> Cursor {
    Cursor::new(compile(schema.as_object().unwrap()).unwrap())
}

fn entities() -> Value {
    json!({
        "type": "object",
        "required": ["people", "places", "count"],
        "properties": {
            "people": { "type": "array", "items": { "type": "string" } },
            "places": { "type": "array", "minItems": 1, "maxItems": 3,
                        "items": { "type": "string", "minLength": 2, "maxLength": 12 } },
            "count": { "type": "integer" },
            "score": { "type": ["number", "null"] },
            "mood": { "enum": ["calm", "angry", 7] },
            "ok": { "type": "boolean" },
            "nested": { "type": "object", "required": ["x"], "properties": {
                "x": { "type": "array", "items": { "type": "object", "required": ["k"],
                       "properties": { "k": { "type": "string" } } } } } }
        }
    })
}

const VALID: &[&str] = &[
    r#"{"people": ["Anna Berg", "Tom Hale"], "places": ["Oslo"], "count": 2}"#,
    "{\n  \"count\": -12,\n  \"places\": [\"Bergen\", \"Tromsø\"],\n  \"people\": [],\n  \"score\": 3.5e-2\n}",
    r#"{"people":["a \"quoted\" \u00e9 name\n"],"places":["xy","zz","ab"],"count":0,"mood":"angry","ok":false,"score":null}"#,
    r#"{"mood": 7, "nested": {"x": [{"k": ""}, {"k": "v"}]}, "people": [], "places": ["NY"], "count": 10}"#,
];

#[test]
fn valid_documents_are_read_to_the_end() {
    for doc in VALID {
        let mut c = cursor(&entities());
        for (i, b) in doc.bytes().enumerate() {
            assert!(c.feed(b), "rejected byte {i} ({:?}) of {doc}", b as char);
        }
        assert!(c.is_done(), "{doc}");
        assert!(c.completion().is_empty());
    }
}

#[test]
fn text_the_schema_forbids_is_refused() {
    let bad = [
        (r#"{"people": [], "pets""#, "an undeclared key"),
        (r#"{"people": [], "people""#, "a key written twice"),
        (r#"{"people": []}"#, "closing before the required keys"),
        (r#"{"places": ["a""#, "a string under minLength"),
        (r#"{"places": ["abcdefghijklm"#, "a string over maxLength"),
        (
            r#"{"places": ["ab", "cd", "ef", "#,
            "more items than maxItems",
        ),
        (r#"{"count": 1.5"#, "a fraction in an integer"),
        (r#"{"count": 01"#, "a leading zero"),
        (r#"{"mood": "sad""#, "a value outside the enum"),
        (
            r#"{"people": ["a
"#,
            "a raw newline in a string",
        ),
        ("{\n\n\n", "a run of blank lines"),
        (r#"{"count": 1234567890123456789"#, "a runaway number"),
    ];
    for (text, why) in bad {
        let mut c = cursor(&entities());
        assert!(!c.feed_all(text.as_bytes()), "accepted {why}: {text}");
    }
}

/// Every prefix of every valid document, completed, parses and satisfies the schema.
#[test]
fn every_prefix_completes_to_a_valid_document() {
    let schema = entities();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for doc in VALID {
        let mut c = cursor(&schema);
        for (i, b) in doc.bytes().enumerate() {
            let completion = c.completion();
            let mut whole = c.text().to_vec();
            whole.extend(&completion);
            let text = String::from_utf8_lossy(&whole);
            let value: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{text} (prefix {i} of {doc}): {e}"));
            assert!(validator.is_valid(&value), "{text} (prefix {i} of {doc})");
            let mut probe = c.clone();
            assert!(probe.feed_all(&completion) && probe.is_done(), "{text}");
            assert!(c.feed(b));
        }
    }
}

#[test]
fn a_repeated_item_is_cut_and_ends_its_array() {
    let schema = entities();
    let root = compile(schema.as_object().unwrap()).unwrap();
    let mut c = Cursor::new(root.clone());
    assert!(c.feed_all(br#"{"people": ["Anna", "Tom", "Anna""#));
    let cut = c.repeated_item().expect("the third item repeats the first");
    assert_eq!(&c.text()[..cut], br#"{"people": ["Anna", "Tom""#);
    let closed = c.cut_and_close(root.clone(), cut, false).unwrap();
    assert!(!closed.accepts(b","), "no more items after a repeat");
    assert!(closed.accepts(b" ]"));
    assert_eq!(
        closed.completion(),
        r#"],"places":["……"],"count":0}"#.as_bytes()
    );
    // Distinct items are no repeat; nor is a repeat the array still needs for minItems.
    let mut c = Cursor::new(root);
    assert!(c.feed_all(br#"{"people": ["Anna", "Tom"]"#));
    assert_eq!(c.repeated_item(), None);
}

#[test]
fn a_string_that_loops_is_cut_after_its_first_round() {
    let schema =
        json!({ "type": "object", "required": ["s"], "properties": { "s": { "type": "string" } } });
    let root = compile(schema.as_object().unwrap()).unwrap();
    let mut c = Cursor::new(root.clone());
    assert!(c.feed_all(br#"{"s": "Rain. The river rose. The river rose. The river rose."#));
    let cut = c.repeated_tail().expect("the tail repeats");
    assert_eq!(
        String::from_utf8_lossy(&c.text()[..cut]),
        r#"{"s": "Rain. The river rose."#
    );
    let closed = c.cut_and_close(root, cut, true).unwrap();
    assert!(!closed.accepts(b" more"));
    assert_eq!(closed.completion(), b"\"}");
    // Ordinary prose is left alone.
    let mut c = cursor(&schema);
    assert!(c.feed_all(br#"{"s": "The mayor met the union; the union met the mayor"#));
    assert_eq!(c.repeated_tail(), None);
}

#[test]
fn a_character_cut_between_its_bytes_is_finished_or_refused() {
    let schema = json!({ "type": "string", "maxLength": 3 });
    let mut c = cursor(&schema);
    // "é" is C3 A9: after its first byte only a continuation byte may come.
    assert!(c.feed_all(b"\"ab\xC3"));
    assert!(!c.clone().feed(b'"'), "a quote inside a character");
    let done: Vec<u8> = [c.text(), &c.completion()].concat();
    assert!(std::str::from_utf8(&done).is_ok(), "{done:?}");
    assert!(c.feed(0xA9));
    assert!(
        !c.clone().feed(b'x'),
        "maxLength counts characters, not bytes"
    );
    assert!(c.feed(b'"') && c.is_done());
    assert!(
        !cursor(&schema).feed_all(b"\"\xA9"),
        "a stray continuation byte"
    );
}

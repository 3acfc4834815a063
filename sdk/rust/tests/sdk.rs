//! The SDK natively: descriptors derived from the config and output types, the file type's
//! schema, and the glue between the WIT exports and `Plugin`.

use mediaflow_sdk::bindings::mediaflow::plugin::types as wit;
use mediaflow_sdk::*;

/// Settings of a test plugin.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The text to shout.
    text: String,
    /// How many exclamation marks.
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 10))]
    marks: u32,
    /// A file to append.
    #[serde(default)]
    attachment: Option<File>,
    #[serde(default)]
    mode: Mode,
    /// Words never to shout.
    #[serde(default)]
    quiet: Vec<String>,
}

fn one() -> u32 {
    1
}

#[derive(Clone, Copy, Default, PartialEq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Upper,
    Title,
}

#[derive(Serialize, JsonSchema)]
struct Output {
    /// The shouted text.
    text: String,
    length: usize,
    marks: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<File>,
    extra: Value,
}

struct Shout;

impl Plugin for Shout {
    type Config = Config;
    type Output = Output;

    fn describe() -> Descriptor {
        Descriptor::from_config::<Config>("text.shout", "1.0.0", "Shouts")
            .inputs(["text", "attachment"])
            .outputs_from::<Output>()
    }

    fn check(config: &Config) -> Vec<Issue> {
        config
            .quiet
            .iter()
            .enumerate()
            .filter(|(_, w)| w.contains(' '))
            .map(|(i, _)| Issue::new(&format!("/quiet/{i}"), "one word").help("split it"))
            .collect()
    }

    fn run(c: Config) -> Result<Output, Error> {
        if c.text == "fail" {
            return Err(Error::new("busy", "try later").retryable());
        }
        let text = match c.mode {
            Mode::Upper => c.text.to_uppercase(),
            Mode::Title => c.text.clone(),
        };
        Ok(Output {
            length: text.len(),
            text,
            marks: vec!["!".to_owned(); c.marks as usize],
            file: c.attachment,
            extra: Value::Null,
        })
    }
}

// The macro expands for a real plugin (the exports are only called inside a host).
export!(Shout);

#[test]
fn schema_defaults_and_descriptions_come_from_the_config() {
    let d = Shout::describe();
    assert_eq!(
        (d.name.as_str(), d.version.as_str()),
        ("text.shout", "1.0.0")
    );
    assert!(d.cacheable);
    let s = &d.config_schema;
    assert!(
        s.get("$schema").is_none() && s.get("title").is_none(),
        "{s}"
    );
    assert_eq!(s["description"], "Settings of a test plugin.");
    assert_eq!(s["type"], "object");
    assert_eq!(s["additionalProperties"], false);
    assert_eq!(s["required"], json!(["text"]));
    let p = &s["properties"];
    assert_eq!(
        p["text"],
        json!({"type": "string", "description": "The text to shout."})
    );
    assert_eq!(p["marks"]["default"], 1);
    assert_eq!(
        (p["marks"]["minimum"].clone(), p["marks"]["maximum"].clone()),
        (json!(0), json!(10))
    );
    assert_eq!(p["mode"]["enum"], json!(["upper", "title"]));
    assert_eq!(p["mode"]["default"], "upper");
    assert_eq!(p["quiet"]["default"], json!([]));
    assert_eq!(p["attachment"][FILE_KEYWORD], "file");
    // Properties stay in field order.
    let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["text", "marks", "attachment", "mode", "quiet"]);
}

#[test]
fn ports_come_from_the_schema() {
    let d = Shout::describe();
    let text = d.input_port("text").unwrap();
    assert_eq!(
        text,
        &Port::new("text", ValueType::String)
            .required()
            .describe("The text to shout.")
    );
    let file = d.input_port("attachment").unwrap();
    assert_eq!((file.ty, file.required), (ValueType::File, false));
    assert_eq!(file.description, "A file to append.");
    assert_eq!(d.inputs.len(), 2);
    let outs: Vec<(&str, ValueType, bool)> = d
        .outputs
        .iter()
        .map(|p| (p.name.as_str(), p.ty, p.required))
        .collect();
    assert_eq!(
        outs,
        [
            ("text", ValueType::String, false),
            ("length", ValueType::Integer, false),
            ("marks", ValueType::List, false),
            ("file", ValueType::File, false),
            ("extra", ValueType::Any, false),
        ]
    );
    assert_eq!(
        d.output_port("text").unwrap().description,
        "The shouted text."
    );
}

#[test]
#[should_panic(expected = "plugin `text.shout`: input `txt` is not a field of its config")]
fn an_input_that_is_not_a_config_field_is_a_bug() {
    let _ = Descriptor::from_config::<Config>("text.shout", "1.0.0", "Shouts").inputs(["txt"]);
}

#[test]
fn the_descriptor_crosses_the_wit_boundary() {
    let d: wit::Descriptor = mediaflow_sdk::__private::describe::<Shout>();
    assert_eq!(d.name, "text.shout");
    let schema: Value = serde_json::from_str(&d.config_schema).unwrap();
    assert_eq!(schema, Shout::describe().config_schema);
    let inputs: Vec<(&str, bool)> = d
        .inputs
        .iter()
        .map(|p| (p.name.as_str(), p.required))
        .collect();
    assert_eq!(inputs, [("text", true), ("attachment", false)]);
    assert!(matches!(d.inputs[1].type_, wit::ValueType::File));
    assert_eq!(d.outputs.len(), 5);
    let hand = Descriptor::new("x.y", "0.1.0", "by hand")
        .schema(json!({"type": "object"}))
        .input(Port::new("a", ValueType::Any))
        .output(Port::new("b", ValueType::Boolean))
        .not_cacheable();
    assert!(!hand.cacheable);
    assert_eq!((hand.inputs.len(), hand.outputs.len()), (1, 1));
}

#[test]
fn value_types_follow_the_hosts_rules() {
    let cases = [
        (json!({"type": "string"}), ValueType::String),
        (json!({"type": "array", "items": {}}), ValueType::List),
        (json!({"type": "object"}), ValueType::Object),
        (
            json!({"type": "integer", "format": "uint32"}),
            ValueType::Integer,
        ),
        (json!({"type": ["number", "null"]}), ValueType::Number),
        (json!({"type": ["number", "string"]}), ValueType::Any),
        (json!({"enum": ["a", "b", null]}), ValueType::String),
        (json!({"enum": ["a", 1]}), ValueType::Any),
        (json!({"const": true}), ValueType::Boolean),
        (json!({"const": 1.5}), ValueType::Number),
        (
            json!({"anyOf": [{"type": "integer"}, {"type": "null"}]}),
            ValueType::Integer,
        ),
        (
            json!({"oneOf": [{"const": "a"}, {"const": "b"}]}),
            ValueType::String,
        ),
        (
            json!({"oneOf": [{"type": "string"}, {"type": "boolean"}]}),
            ValueType::Any,
        ),
        (
            json!({"type": "object", FILE_KEYWORD: "file"}),
            ValueType::File,
        ),
        (json!({"description": "anything"}), ValueType::Any),
        (json!(true), ValueType::Any),
    ];
    for (schema, ty) in cases {
        assert_eq!(ValueType::from_schema(&schema), ty, "{schema}");
    }
}

#[test]
fn the_file_type_has_the_hosts_schema_inline() {
    let expected = json!({
        "type": "object",
        "x-mediaflow-type": "file",
        "description": "a file: a `file` input or an artifact from an earlier step",
        "required": ["sha256", "media_type"],
        "properties": {
            "sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
            "media_type": {"type": "string"},
            "size": {"type": "integer", "minimum": 0},
            "name": {"type": "string"}
        }
    });
    assert_eq!(schema_of::<File>(), expected);
    #[derive(JsonSchema)]
    #[allow(dead_code)]
    struct Holder {
        file: File,
    }
    let holder = schema_of::<Holder>();
    assert!(holder.get("$defs").is_none(), "inline, no $ref: {holder}");
    assert_eq!(holder["properties"]["file"], expected);

    let sha = "ab".repeat(32);
    let f = File {
        sha256: sha.clone(),
        media_type: "text/plain".into(),
        size: 6,
        name: None,
    };
    let v = serde_json::to_value(&f).unwrap();
    assert_eq!(
        v,
        json!({"sha256": sha, "media_type": "text/plain", "size": 6})
    );
    assert_eq!(File::from_value(&v), Some(f.clone()));
    let named = File {
        name: Some("story.txt".into()),
        ..f
    };
    assert_eq!(serde_json::to_value(&named).unwrap()["name"], "story.txt");
    assert_eq!(
        File::from_value(&json!({"sha256": "short", "media_type": "x"})),
        None
    );
    assert_eq!(ValueType::of(&v), ValueType::File);
}

fn issues(with: &str) -> Vec<wit::ConfigIssue> {
    mediaflow_sdk::__private::validate::<Shout>(with)
}

#[test]
fn validate_reports_parse_errors_and_check_issues() {
    assert!(issues(r#"{"text": "hi"}"#).is_empty());
    // `check` runs on the parsed config.
    let found = issues(r#"{"text": "hi", "quiet": ["ok", "not ok"]}"#);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].pointer, "/quiet/1");
    assert_eq!(found[0].message, "one word");
    assert_eq!(found[0].help.as_deref(), Some("split it"));
    // A config that does not parse: one issue at the root with serde's message.
    let found = issues(r#"{"text": "hi", "marks": "many"}"#);
    assert_eq!(found.len(), 1, "{:?}", found[0].message);
    assert_eq!(found[0].pointer, "");
    assert!(
        found[0].message.contains("expected u32"),
        "{}",
        found[0].message
    );
    let found = issues(r#"{"marks": 2}"#);
    assert_eq!(found[0].message, "missing field `text`");
    let found = issues(r#"{"text": "hi", "volume": 11}"#);
    assert!(
        found[0].message.contains("unknown field `volume`"),
        "{}",
        found[0].message
    );
    let found = issues("not json");
    assert!(
        found[0].message.starts_with("config is not JSON"),
        "{}",
        found[0].message
    );
}

#[test]
fn validate_leaves_unresolved_expressions_for_later() {
    // Expressions stand where numbers, lists and files will be.
    assert!(issues(r#"{"text": "hi", "marks": "${{ inputs.n }}"}"#).is_empty());
    assert!(issues(r#"{"text": "hi", "quiet": "${{ inputs.words }}"}"#).is_empty());
    assert!(issues(r#"{"text": "${{ inputs.t }}", "attachment": ["${{ inputs.f }}"]}"#).is_empty());
    // … but not in a config that has none.
    assert_eq!(issues(r#"{"text": "hi", "mode": "loud"}"#).len(), 1);
    // A parsed config with an expression in a string field is still checked.
    let found = issues(r#"{"text": "${{ inputs.t }}", "quiet": ["a b"]}"#);
    assert_eq!(found.len(), 1);
    assert_eq!(
        testing::validate::<Shout>(&json!({"text": "hi", "quiet": ["a b"]})).len(),
        1
    );
}

fn run(config: &str, inputs: &str) -> Result<Value, wit::PluginError> {
    mediaflow_sdk::__private::run::<Shout>(config, inputs)
        .map(|out| serde_json::from_str(&out).unwrap())
}

#[test]
fn run_merges_config_and_inputs_into_one_config() {
    let sha = "0f".repeat(32);
    let inputs = format!(
        r#"{{"text": "hey", "attachment": {{"sha256": "{sha}", "media_type": "image/png", "size": 3}}}}"#
    );
    let out = run(r#"{"marks": 2}"#, &inputs).unwrap();
    assert_eq!(
        out,
        json!({
            "text": "HEY",
            "length": 3,
            "marks": ["!", "!"],
            "file": {"sha256": sha, "media_type": "image/png", "size": 3},
            "extra": null
        })
    );
    // Output fields keep their order.
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["text", "length", "marks", "file", "extra"]);
    // Defaults apply; a skipped `None` is absent.
    let out = run(r#"{"mode": "title"}"#, r#"{"text": "hey"}"#).unwrap();
    assert_eq!(out["text"], "hey");
    assert_eq!(out["marks"], json!(["!"]));
    assert!(out.get("file").is_none());
    assert_eq!(
        testing::run::<Shout>(json!({"text": "a", "marks": 0})).unwrap()["marks"],
        json!([])
    );
}

#[test]
fn run_reports_bad_settings_and_plugin_errors() {
    let e = run(r#"{"marks": "x"}"#, r#"{"text": "hey"}"#).unwrap_err();
    assert_eq!(e.code, "bad_config");
    assert!(e.message.starts_with("invalid settings: "), "{}", e.message);
    assert!(!e.retryable);
    let e = run("{}", "{}").unwrap_err();
    assert_eq!(e.message, "invalid settings: missing field `text`");
    let e = run("[]", "{}").unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        ("bad_input", "config is not a JSON object")
    );
    let e = run("{}", "{").unwrap_err();
    assert!(e.message.starts_with("inputs is not JSON"), "{}", e.message);
    // The plugin's own error crosses unchanged.
    let e = run("{}", r#"{"text": "fail"}"#).unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.message.as_str(), e.retryable),
        ("busy", "try later", true)
    );
}

struct Scalar;

impl Plugin for Scalar {
    type Config = Value;
    type Output = String;
    fn describe() -> Descriptor {
        Descriptor::new("x.scalar", "0.1.0", "returns a string")
    }
    fn run(_: Value) -> Result<String, Error> {
        Ok("not an object".into())
    }
}

#[test]
fn outputs_must_be_an_object() {
    let e = mediaflow_sdk::__private::run::<Scalar>("{}", "{}").unwrap_err();
    assert_eq!(e.code, "bad_output");
    assert!(testing::validate::<Scalar>(&json!({"anything": 1})).is_empty());
}

#[test]
fn errors_are_final_unless_marked_retryable() {
    let e = Error::new("not_found", "no such story");
    assert!(!e.retryable);
    assert_eq!(e.help, None);
    assert_eq!(e.to_string(), "not_found: no such story");
    let e = e.help("check the id").retryable();
    assert!(e.retryable);
    assert_eq!(e.help.as_deref(), Some("check the id"));
    let b = Error::bad_input("empty text");
    assert_eq!((b.code.as_str(), b.retryable), ("bad_input", false));
    let i = Issue::new("/a/0", "bad").help("fix it");
    assert_eq!(
        (i.pointer.as_str(), i.help.as_deref()),
        ("/a/0", Some("fix it"))
    );
}

#[test]
fn outside_a_host_logs_go_to_stderr_and_capabilities_are_unavailable() {
    log::info("no host here");
    log::progress(0.5, Some("half"));
    assert_eq!(kv::get("count").unwrap_err().code, "unavailable");
    let e = llm::generate(&json!({"prompt": "hi"})).unwrap_err();
    assert_eq!(e.code, "unavailable");
    assert!(e.message.contains("`llm`"), "{}", e.message);
    let e = artifacts::write("a.txt", "text/plain", b"a").unwrap_err();
    assert!(!e.retryable);
}

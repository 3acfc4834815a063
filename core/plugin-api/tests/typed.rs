//! The plugin author's guide's `text.shout`, written natively: the typed adapter parses the
//! `with:` map, runs `check`, serializes the outputs, and derives the descriptor.

use std::sync::Arc;

use mediaflow_plugin_api::*;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The text to shout.
    text: String,
    /// How many exclamation marks.
    #[serde(default = "one")]
    #[schemars(range(min = 0, max = 10))]
    marks: u32,
}

fn one() -> u32 {
    1
}

#[derive(Serialize, JsonSchema)]
struct Output {
    text: String,
}

struct Shout(Descriptor);

#[async_trait::async_trait]
impl TypedPlugin for Shout {
    type Config = Config;
    type Output = Output;

    fn descriptor(&self) -> &Descriptor {
        &self.0
    }

    fn check(&self, c: &Config) -> Vec<ConfigIssue> {
        if c.text.contains('\n') {
            vec![ConfigIssue::new("/text", "one line only")]
        } else {
            Vec::new()
        }
    }

    async fn run(&self, c: Config, _cx: &RunContext) -> Result<Output, PluginError> {
        let marks = "!".repeat(c.marks as usize);
        Ok(Output {
            text: c.text.to_uppercase() + &marks,
        })
    }
}

fn shout() -> Arc<dyn Plugin> {
    typed(Shout(
        Descriptor::from_config::<Config>("text.shout", "1.0.0", "Shouts")
            .inputs(["text"])
            .outputs_from::<Output>(),
    ))
}

struct Quiet;
impl EventSink for Quiet {
    fn progress(&self, _: f32, _: Option<&str>) {}
    fn log(&self, _: LogLevel, _: &str) {}
}

struct NoFiles;
#[async_trait::async_trait]
impl Artifacts for NoFiles {
    async fn put_bytes(
        &self,
        _: &[u8],
        _: &str,
        _: Option<&str>,
    ) -> Result<ArtifactRef, PluginError> {
        Err(PluginError::new("unavailable", "no store"))
    }
    async fn put_file(
        &self,
        _: &std::path::Path,
        _: Option<&str>,
    ) -> Result<ArtifactRef, PluginError> {
        Err(PluginError::new("unavailable", "no store"))
    }
    async fn path(&self, _: &ArtifactRef) -> Result<std::path::PathBuf, PluginError> {
        Err(PluginError::new("unavailable", "no store"))
    }
}

fn cx() -> RunContext {
    RunContext::new(
        "run".into(),
        "step".into(),
        None,
        1,
        CancellationToken::new(),
        Arc::new(Quiet),
        Arc::new(NoFiles),
    )
}

#[test]
fn the_descriptor_is_derived_from_the_types() {
    let p = shout();
    let d = p.descriptor();
    assert_eq!(d.config_schema["properties"]["marks"]["default"], 1);
    assert_eq!(d.config_schema["properties"]["marks"]["maximum"], 10);
    assert_eq!(
        d.config_schema["properties"]["text"]["description"],
        "The text to shout."
    );
    let text = d.input_port("text").unwrap();
    assert_eq!((text.ty, text.required), (ValueType::String, true));
    assert_eq!(d.output_port("text").unwrap().ty, ValueType::String);
}

#[tokio::test]
async fn runs_with_defaults_and_serializes_outputs() {
    let p = shout();
    let out = p
        .run(serde_json::json!({"text": "hi"}), &cx())
        .await
        .unwrap();
    assert_eq!(out, serde_json::json!({"text": "HI!"}));
    let e = p
        .run(serde_json::json!({"txt": "hi"}), &cx())
        .await
        .unwrap_err();
    assert_eq!(e.code, "bad_config");
    assert!(!e.retryable, "errors are final unless marked");
}

#[test]
fn validate_parses_then_checks_and_waits_for_expressions() {
    let p = shout();
    assert!(p.validate(&serde_json::json!({"text": "a"})).is_ok());
    let issues = p
        .validate(&serde_json::json!({"text": "a\nb"}))
        .unwrap_err();
    assert_eq!(issues[0].pointer, "/text");
    // `marks` is still an expression at compile time: nothing to say about it yet, but the
    // rest is checked.
    assert!(p
        .validate(&serde_json::json!({"text": "a", "marks": "${{ inputs.n }}"}))
        .is_ok());
    let issues = p
        .validate(&serde_json::json!({"text": "a\nb", "marks": "${{ inputs.n }}"}))
        .unwrap_err();
    assert_eq!(issues[0].pointer, "/text");
    // `text` is text even as an expression: it is checked as written.
    assert!(p
        .validate(&serde_json::json!({"text": "${{ inputs.t }}", "marks": "${{ inputs.n }}"}))
        .is_ok());
    // Without expressions, a map that does not parse is a problem.
    let issues = p.validate(&serde_json::json!({"text": 3})).unwrap_err();
    assert!(issues[0].message.contains("invalid settings"), "{issues:?}");
}

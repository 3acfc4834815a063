use mediaflow_plugin_api::{
    duration_from_value, schemars, ConfigIssue, Descriptor, JsonSchema, PluginError, RunContext,
    TypedPlugin, Value,
};
use serde::{Deserialize, Serialize};

fn duration_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "seconds, or a duration such as 500ms, 2s, 1m",
        "anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}]
    })
}

/// Settings of `core.delay`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DelayConfig {
    #[schemars(schema_with = "duration_schema")]
    pub duration: Value,
}

/// The outputs of `core.delay`.
#[derive(Serialize, JsonSchema)]
pub struct DelayOutput {
    /// How long it waited.
    pub slept_ms: u64,
}

/// `core.delay`: waits, then succeeds. Stops early, as cancelled, when told to.
pub struct Delay(Descriptor);

impl Default for Delay {
    fn default() -> Self {
        Self::new()
    }
}

impl Delay {
    pub fn new() -> Self {
        Delay(
            Descriptor::from_config::<DelayConfig>("core.delay", "1.0.0", "Wait for a while")
                .outputs_from::<DelayOutput>()
                .not_cacheable(),
        )
    }
}

#[async_trait::async_trait]
impl TypedPlugin for Delay {
    type Config = DelayConfig;
    type Output = DelayOutput;

    fn descriptor(&self) -> &Descriptor {
        &self.0
    }

    fn check(&self, c: &DelayConfig) -> Vec<ConfigIssue> {
        match duration_from_value(&c.duration) {
            Some(_) => Vec::new(),
            None => {
                vec![
                    ConfigIssue::new("/duration", format!("{} is not a duration", c.duration))
                        .with_help("write e.g. `500ms`, `2s`, `1m` or a number of seconds"),
                ]
            }
        }
    }

    async fn run(&self, c: DelayConfig, cx: &RunContext) -> Result<DelayOutput, PluginError> {
        let d = duration_from_value(&c.duration)
            .ok_or_else(|| PluginError::new("bad_config", "`duration` is not a duration"))?;
        tokio::select! {
            _ = tokio::time::sleep(d) => Ok(DelayOutput { slept_ms: d.as_millis() as u64 }),
            _ = cx.cancelled() => Err(PluginError::cancelled()),
        }
    }
}

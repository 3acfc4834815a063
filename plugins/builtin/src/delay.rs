use mediaflow_plugin_api::{
    ConfigIssue, Descriptor, Plugin, PluginError, Port, RunContext, Value, ValueType,
};
use serde_json::json;

use crate::parse_duration;

/// `core.delay`: waits, then succeeds. Stops early, as cancelled, when told to.
pub struct Delay {
    descriptor: Descriptor,
}

impl Default for Delay {
    fn default() -> Self {
        Self::new()
    }
}

impl Delay {
    pub fn new() -> Self {
        Delay {
            descriptor: Descriptor::new("core.delay", "1.0.0", "Wait for a while")
                .output(Port::new("slept_ms", ValueType::Integer))
                .schema(json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["duration"],
                    "properties": {
                        "duration": {
                            "description": "seconds, or a duration such as 500ms, 2s, 1m",
                            "anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}]
                        }
                    }
                }))
                .not_cacheable(),
        }
    }
}

#[async_trait::async_trait]
impl Plugin for Delay {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn validate(&self, config: &Value) -> Result<(), Vec<ConfigIssue>> {
        match config.get("duration") {
            Some(v) if parse_duration(v).is_none() => Err(vec![ConfigIssue::new(
                "/duration",
                format!("{v} is not a duration"),
            )
            .with_help("write e.g. `500ms`, `2s`, `1m` or a number of seconds")]),
            _ => Ok(()),
        }
    }

    async fn run(&self, config: Value, cx: &RunContext) -> Result<Value, PluginError> {
        let d = config
            .get("duration")
            .and_then(parse_duration)
            .ok_or_else(|| PluginError::fatal("bad_config", "`duration` is not a duration"))?;
        tokio::select! {
            _ = tokio::time::sleep(d) => Ok(json!({ "slept_ms": d.as_millis() as u64 })),
            _ = cx.cancelled() => Err(PluginError::cancelled()),
        }
    }
}

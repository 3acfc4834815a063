use mediaflow_plugin_api::{
    ConfigIssue, Descriptor, Plugin, PluginError, Port, RunContext, Value, ValueType,
};
use minijinja::{Environment, UndefinedBehavior};
use serde_json::json;

use crate::str_field;

/// `text.template`: renders a Jinja template (`{{ name }}`, `{% for %}`) with `vars`.
/// `${{ }}` expressions in `with:` are resolved by the engine before the template renders.
pub struct TextTemplate {
    descriptor: Descriptor,
    env: Environment<'static>,
}

impl Default for TextTemplate {
    fn default() -> Self {
        Self::new()
    }
}

impl TextTemplate {
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        TextTemplate {
            descriptor: Descriptor::new(
                "text.template",
                "1.0.0",
                "Render text from a template and variables",
            )
            .input(Port::new("template", ValueType::String).required().describe("Jinja template text"))
            .input(Port::new("vars", ValueType::Object).describe("variables for the template"))
            .output(Port::new("text", ValueType::String))
            .schema(json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["template"],
                "properties": {
                    "template": {"type": "string", "description": "template text; `{{ var }}` reads `vars`"},
                    "vars": {"type": "object", "description": "variables for the template"},
                    "trim": {"type": "boolean", "default": false, "description": "strip surrounding whitespace"}
                }
            })),
            env,
        }
    }
}

#[async_trait::async_trait]
impl Plugin for TextTemplate {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn validate(&self, config: &Value) -> Result<(), Vec<ConfigIssue>> {
        let Some(t) = config.get("template").and_then(Value::as_str) else {
            return Ok(());
        };
        if t.contains("${{") {
            return Ok(());
        }
        match self.env.template_from_str(t) {
            Ok(_) => Ok(()),
            Err(e) => Err(vec![ConfigIssue::new(
                "/template",
                format!("invalid template: {e}"),
            )]),
        }
    }

    async fn run(&self, config: Value, _cx: &RunContext) -> Result<Value, PluginError> {
        let template = str_field(&config, "template")?;
        let vars = config.get("vars").cloned().unwrap_or(json!({}));
        let tmpl = self
            .env
            .template_from_str(template)
            .map_err(|e| PluginError::fatal("bad_template", format!("invalid template: {e}")))?;
        let mut text = tmpl.render(&vars).map_err(|e| {
            PluginError::fatal("render_failed", format!("cannot render the template: {e}"))
        })?;
        if config.get("trim").and_then(Value::as_bool).unwrap_or(false) {
            text = text.trim().to_owned();
        }
        Ok(json!({ "text": text }))
    }
}

use mediaflow_plugin_api::{
    ConfigIssue, Descriptor, JsonSchema, Map, PluginError, RunContext, TypedPlugin, Value,
};
use minijinja::{Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};

/// Settings of `text.template`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    /// Template text (Jinja); `{{ var }}` reads `vars`.
    pub template: String,
    /// Variables for the template.
    #[serde(default)]
    pub vars: Map<String, Value>,
    /// Strip surrounding whitespace.
    #[serde(default)]
    pub trim: bool,
}

/// The outputs of `text.template`.
#[derive(Serialize, JsonSchema)]
pub struct TextOutput {
    /// The rendered text.
    pub text: String,
}

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
            descriptor: Descriptor::from_config::<TemplateConfig>(
                "text.template",
                "1.0.0",
                "Render text from a template and variables",
            )
            .inputs(["template", "vars"])
            .outputs_from::<TextOutput>(),
            env,
        }
    }
}

#[async_trait::async_trait]
impl TypedPlugin for TextTemplate {
    type Config = TemplateConfig;
    type Output = TextOutput;

    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn check(&self, c: &TemplateConfig) -> Vec<ConfigIssue> {
        if c.template.contains("${{") {
            return Vec::new();
        }
        match self.env.template_from_str(&c.template) {
            Ok(_) => Vec::new(),
            Err(e) => vec![ConfigIssue::new(
                "/template",
                format!("invalid template: {e}"),
            )],
        }
    }

    async fn run(&self, c: TemplateConfig, _cx: &RunContext) -> Result<TextOutput, PluginError> {
        let tmpl = self
            .env
            .template_from_str(&c.template)
            .map_err(|e| PluginError::new("bad_template", format!("invalid template: {e}")))?;
        let text = tmpl.render(&c.vars).map_err(|e| {
            PluginError::new("render_failed", format!("cannot render the template: {e}"))
        })?;
        let text = if c.trim { text.trim().to_owned() } else { text };
        Ok(TextOutput { text })
    }
}

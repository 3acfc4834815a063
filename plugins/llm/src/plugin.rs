//! `llm.generate`: the descriptor, config checks and the call.

use std::sync::Arc;

use llama_cpp_2::llama_backend::LlamaBackend;
use mediaflow_plugin_api::{
    ConfigIssue, Descriptor, Plugin, PluginError, Port, RunContext, Value, ValueType,
};
use mediaflow_plugin_support::PinnedThread;
use serde_json::json;

use crate::cache::ModelCache;
use crate::generate::{generate, Request};

pub struct Generate {
    descriptor: Descriptor,
    backend: Arc<LlamaBackend>,
    models: ModelCache,
    /// Every generation runs on this one thread (see [`PinnedThread`]).
    worker: PinnedThread,
}

fn schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["model", "prompt"],
        "properties": {
            "model": {"type": "string", "description": "a catalog name (`mediaflow models list`), a name given to `mediaflow models add`, or a path to a GGUF file"},
            "prompt": {"type": "string", "description": "the user message (or the whole prompt with `raw: true`)"},
            "system": {"type": "string", "description": "system message"},
            "raw": {"type": "boolean", "default": false, "description": "send `prompt` as is, without the model's chat template"},
            "max_tokens": {"type": "integer", "minimum": 1, "maximum": 32768, "default": 256},
            "temperature": {"type": "number", "minimum": 0, "maximum": 5, "default": 0.8, "description": "0 = greedy (deterministic)"},
            "top_p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.95},
            "top_k": {"type": "integer", "minimum": 0, "default": 40},
            "repeat_penalty": {"type": "number", "exclusiveMinimum": 0, "default": 1.0},
            "seed": {"type": "integer", "minimum": 0, "maximum": 4294967295u64, "default": 42},
            "stop": {"type": "array", "items": {"type": "string", "minLength": 1}, "description": "stop before any of these strings"},
            "json_schema": {"type": "object", "description": "constrain the output to JSON valid under this schema; the `json` output holds it parsed"},
            "grammar": {"type": "string", "description": "a GBNF grammar (root rule `root`) constraining the output"},
            "threads": {"type": "integer", "minimum": 1, "maximum": 256},
            "context": {"type": "integer", "minimum": 128, "description": "context window in tokens (default: prompt + max_tokens)"}
        }
    })
}

impl Generate {
    pub fn new() -> Result<Self, String> {
        let mut backend = LlamaBackend::init().map_err(|e| e.to_string())?;
        backend.void_logs();
        let budget_mb: u64 = std::env::var("MEDIAFLOW_LLM_MEMORY_MB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(4096);
        let descriptor = Descriptor::new(
            "llm.generate",
            "1.0.0",
            "Generate text with a local LLM (llama.cpp), optionally as schema-valid JSON",
        )
        .input(Port::new("prompt", ValueType::String).required())
        .input(Port::new("system", ValueType::String))
        .output(Port::new("text", ValueType::String))
        .output(Port::new("json", ValueType::Any).describe("the parsed output, with `json_schema`"))
        .output(Port::new("prompt_tokens", ValueType::Integer))
        .output(Port::new("completion_tokens", ValueType::Integer))
        .output(Port::new("prompt_tokens_per_s", ValueType::Number))
        .output(Port::new("tokens_per_s", ValueType::Number))
        .output(Port::new("finish_reason", ValueType::String))
        .capability("llm")
        .max_concurrency(1)
        .schema(schema());
        Ok(Generate {
            descriptor,
            backend: Arc::new(backend),
            models: ModelCache::new(budget_mb * 1024 * 1024),
            worker: PinnedThread::start("llama"),
        })
    }
}

#[async_trait::async_trait]
impl Plugin for Generate {
    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn validate(&self, config: &Value) -> Result<(), Vec<ConfigIssue>> {
        if config.get("json_schema").is_some() && config.get("grammar").is_some() {
            return Err(vec![ConfigIssue::new(
                "/grammar",
                "give `json_schema` or `grammar`, not both",
            )]);
        }
        if let Some(schema) = config.get("json_schema") {
            if let Err(e) = llama_cpp_2::json_schema_to_grammar(&schema.to_string()) {
                return Err(vec![ConfigIssue::new(
                    "/json_schema",
                    format!("cannot turn this schema into a grammar: {e}"),
                )
                .with_help(
                    "use objects, arrays, strings, numbers, booleans, enums and `required`",
                )]);
            }
        }
        Ok(())
    }

    async fn run(&self, config: Value, cx: &RunContext) -> Result<Value, PluginError> {
        let req: Request = serde_json::from_value(config)
            .map_err(|e| PluginError::fatal("bad_config", format!("invalid settings: {e}")))?;
        let path = mediaflow_models::resolve_for_step(&req.model)?;
        let model = self.models.get(&self.backend, &path).await?;
        let backend = self.backend.clone();
        let token = cx.cancel_token().clone();
        let cx2 = cx.clone();
        let out = self
            .worker
            .run(move || generate(&backend, &model, &req, &token, &|f| cx2.progress(f, None)))
            .await
            .ok_or_else(|| PluginError::new("generate", "the generation thread is gone"))??;
        Ok(out)
    }
}

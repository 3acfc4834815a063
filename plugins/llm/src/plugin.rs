//! `llm.generate`: the descriptor, config checks and the call.

use std::path::PathBuf;
use std::sync::Arc;

use llama_cpp_2::llama_backend::LlamaBackend;
use mediaflow_models::{ModelError, ModelStore};
use mediaflow_plugin_api::{
    ConfigIssue, Descriptor, Plugin, PluginError, Port, RunContext, Value, ValueType,
};
use serde_json::json;

use crate::cache::ModelCache;
use crate::generate::{generate, Request};

type Job = Box<dyn FnOnce() + Send>;

pub struct Generate {
    descriptor: Descriptor,
    backend: Arc<LlamaBackend>,
    models: ModelCache,
    /// Every generation runs on this one long-lived thread. llama.cpp's OpenMP keeps a team
    /// of spinning worker threads per calling thread; calling from changing threads (as
    /// `spawn_blocking` does) leaves old teams spinning and costs a third of the speed.
    worker: std::sync::Mutex<std::sync::mpsc::Sender<Job>>,
}

fn start_worker() -> std::sync::mpsc::Sender<Job> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("llama".into())
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                job();
            }
        })
        .ok();
    tx
}

fn models_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MEDIAFLOW_MODELS") {
        return PathBuf::from(d);
    }
    let data = std::env::var_os("MEDIAFLOW_DATA_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/mediaflow"))
        })
        .unwrap_or_else(|| PathBuf::from("."));
    ModelStore::default_dir(&data)
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
            worker: std::sync::Mutex::new(start_worker()),
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
        let store = ModelStore::open(models_dir())
            .map_err(|e| PluginError::fatal("models", e.to_string()))?;
        let path = store.resolve(&req.model).map_err(|e| {
            let help = e.help();
            let code = match e {
                ModelError::NotInstalled { .. } => "model_not_installed",
                _ => "unknown_model",
            };
            let err = PluginError::fatal(code, e.to_string());
            match help {
                Some(h) => err.with_help(h),
                None => err,
            }
        })?;
        let model = self.models.get(&self.backend, &path).await?;
        let backend = self.backend.clone();
        let token = cx.cancel_token().clone();
        let cx2 = cx.clone();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let out = generate(&backend, &model, &req, &token, &|f| cx2.progress(f, None));
            let _ = done_tx.send(out);
        });
        let sent = self
            .worker
            .lock()
            .map(|w| w.send(job).is_ok())
            .unwrap_or(false);
        if !sent {
            return Err(PluginError::new(
                "generate",
                "the generation thread is gone",
            ));
        }
        let out = done_rx
            .await
            .map_err(|_| PluginError::new("generate", "generation died"))??;
        Ok(out)
    }
}

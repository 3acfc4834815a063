//! `llm.generate`: the descriptor, config checks and the call.

use std::sync::Arc;

use llama_cpp_2::llama_backend::LlamaBackend;
use mediaflow_plugin_api::{
    ConfigIssue, Descriptor, LogLevel, PluginError, RunContext, TypedPlugin, Value,
};

use crate::batch::{Batcher, Limits};
use crate::cache::ModelCache;
use crate::generate::{prepare, structured, Generated, Request};
use crate::ground::Source;
use crate::sequence::Job;

pub struct Generate {
    descriptor: Descriptor,
    backend: Arc<LlamaBackend>,
    models: ModelCache,
    /// Every generation runs on this one thread, concurrent calls decoded together.
    batcher: Batcher,
}

impl Generate {
    pub fn new() -> Result<Self, String> {
        let mut backend = LlamaBackend::init().map_err(|e| e.to_string())?;
        backend.void_logs();
        let budget_mb: u64 = std::env::var("MEDIAFLOW_LLM_MEMORY_MB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(4096);
        let backend = Arc::new(backend);
        let limits = Limits::from_env();
        Ok(Generate {
            descriptor: descriptor(limits.sequences as usize),
            models: ModelCache::new(budget_mb * 1024 * 1024),
            batcher: Batcher::start(backend.clone(), limits),
            backend,
        })
    }
}

/// `llm.generate`'s descriptor, from [`Request`] and [`Generated`]: up to `sequences`
/// calls at once, which the process decodes together.
pub fn descriptor(sequences: usize) -> Descriptor {
    Descriptor::from_config::<Request>(
        "llm.generate",
        "1.0.0",
        "Generate text with a local LLM (llama.cpp), optionally as schema-valid JSON",
    )
    .inputs(["prompt", "system"])
    .outputs_from::<Generated>()
    .max_concurrency(sequences)
    .batches()
}

#[async_trait::async_trait]
impl TypedPlugin for Generate {
    type Config = Request;
    type Output = Generated;

    fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    fn check(&self, req: &Request) -> Vec<ConfigIssue> {
        if !req.choices.is_empty() && (req.json_schema.is_some() || req.grammar.is_some()) {
            return vec![ConfigIssue::new(
                "/choices",
                "`choices` scores fixed answers; it cannot be combined with `json_schema` or `grammar`",
            )];
        }
        if req.choices.len() == 1 {
            return vec![ConfigIssue::new("/choices", "give at least 2 choices")];
        }
        if req.json_schema.is_some() && req.grammar.is_some() {
            return vec![ConfigIssue::new(
                "/grammar",
                "give `json_schema` or `grammar`, not both",
            )];
        }
        if req.ground_in.is_none() && !req.ground_fields.is_empty() {
            return vec![ConfigIssue::new(
                "/ground_fields",
                "`ground_fields` says which fields `ground_in` checks; give `ground_in` too",
            )];
        }
        if req.ground_in.is_some() && (!req.choices.is_empty() || req.grammar.is_some()) {
            return vec![ConfigIssue::new(
                "/ground_in",
                "grounding works on generated text and `json_schema`; it cannot be combined with `choices` or `grammar`",
            )];
        }
        if let (Some(_), Some(schema)) = (&req.ground_in, &req.json_schema) {
            if let Err(e) = crate::json::compile(schema) {
                let at = format!("/json_schema{}", e.pointer.trim_end_matches('/'));
                return vec![ConfigIssue::new(
                    &at,
                    format!(
                        "grounding needs a schema the structured decoder enforces: {}",
                        e.reason
                    ),
                )
                .with_help("drop that keyword, or check the output without `ground_in`")];
            }
        }
        if let Some(schema) = &req.json_schema {
            let text = Value::Object(schema.clone()).to_string();
            if let Err(e) = llama_cpp_2::json_schema_to_grammar(&text) {
                return vec![ConfigIssue::new(
                    "/json_schema",
                    format!("cannot turn this schema into a grammar: {e}"),
                )
                .with_help(
                    "use objects, arrays, strings, numbers, booleans, enums and `required`",
                )];
            }
        }
        Vec::new()
    }

    async fn run(&self, req: Request, cx: &RunContext) -> Result<Generated, PluginError> {
        let path = mediaflow_models::resolve_for_step(&req.model)?;
        let model = self.models.get(&self.backend, &path).await?;
        let (schema, max_tokens) = (req.json_schema.clone(), req.max_tokens);
        let (ground, fields) = (req.ground_in.clone(), req.ground_fields.clone());
        let guide = match schema.as_ref().map(crate::json::compile) {
            Some(Ok(root)) => Some(root),
            Some(Err(e)) => {
                cx.log(
                    LogLevel::Warn,
                    &format!(
                        "json_schema {e}: decoding falls back to llama.cpp's grammar, which cannot close the output when `max_tokens` runs out"
                    ),
                );
                None
            }
            None => None,
        };
        let prepared = prepare(&model, &req)?;
        let progress = cx.clone();
        let cancel = cx.cancel_token().clone();
        let done = self
            .batcher
            .run(move |reply| Job {
                req,
                prepared,
                guide,
                model,
                cancel,
                progress: Box::new(move |f| progress.progress(f, None)),
                reply,
            })
            .await
            .ok_or_else(|| {
                PluginError::new(
                    mediaflow_protocol::PLUGIN_BROKEN,
                    "the generation thread is gone; the plugin process restarts",
                )
                .retryable()
            })??;
        if done.batched_with > 1 {
            cx.log(
                LogLevel::Info,
                &format!(
                    "decoded in a batch of up to {} concurrent calls",
                    done.batched_with
                ),
            );
        }
        let mut out = done.generated;
        let structured_ok = structured(schema.as_ref(), max_tokens, &mut out);
        if let Some(source) = &ground {
            out.ungrounded = Some(crate::ground::report(
                &Source::new(source),
                &out.text,
                out.json.as_ref(),
                &fields,
            ));
        }
        if let Err(e) = structured_ok {
            // The step fails; its log keeps what the model wrote, so the author can see why.
            cx.log(
                LogLevel::Error,
                &format!(
                    "the model's output ({} tokens, stopped by {}):\n{}",
                    out.completion_tokens, out.finish_reason, out.text
                ),
            );
            return Err(e);
        }
        Ok(out)
    }
}

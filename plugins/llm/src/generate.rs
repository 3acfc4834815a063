//! One generation: chat template, prompt evaluation, sampling loop, stop strings, JSON.

use std::num::NonZeroU32;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use mediaflow_plugin_api::{CancellationToken, PluginError, Value};
use serde::Deserialize;
use serde_json::json;

fn d_max_tokens() -> u32 {
    256
}
fn d_temperature() -> f32 {
    0.8
}
fn d_top_p() -> f32 {
    0.95
}
fn d_top_k() -> i32 {
    40
}
fn d_repeat() -> f32 {
    1.0
}
fn d_seed() -> u32 {
    42
}

/// The settings of one call (the step's resolved `with:`).
#[derive(Debug, Deserialize)]
pub struct Request {
    pub model: String,
    pub prompt: String,
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub raw: bool,
    #[serde(default = "d_max_tokens")]
    pub max_tokens: u32,
    #[serde(default = "d_temperature")]
    pub temperature: f32,
    #[serde(default = "d_top_p")]
    pub top_p: f32,
    #[serde(default = "d_top_k")]
    pub top_k: i32,
    #[serde(default = "d_repeat")]
    pub repeat_penalty: f32,
    #[serde(default = "d_seed")]
    pub seed: u32,
    #[serde(default)]
    pub stop: Vec<String>,
    #[serde(default)]
    pub json_schema: Option<Value>,
    #[serde(default)]
    pub grammar: Option<String>,
    #[serde(default)]
    pub threads: Option<i32>,
    #[serde(default)]
    pub context: Option<u32>,
}

fn err(code: &str, msg: impl Into<String>) -> PluginError {
    PluginError::fatal(code, msg)
}

/// The text the model sees: the chat template from the GGUF metadata, unless `raw`.
fn prompt_text(model: &LlamaModel, req: &Request) -> Result<String, PluginError> {
    if req.raw {
        return Ok(req.prompt.clone());
    }
    let mut chat = Vec::new();
    if let Some(system) = &req.system {
        chat.push(
            LlamaChatMessage::new("system".into(), system.clone())
                .map_err(|e| err("bad_prompt", e.to_string()))?,
        );
    }
    chat.push(
        LlamaChatMessage::new("user".into(), req.prompt.clone())
            .map_err(|e| err("bad_prompt", e.to_string()))?,
    );
    match model.chat_template(None) {
        Ok(tmpl) => model.apply_chat_template(&tmpl, &chat, true).map_err(|e| {
            err(
                "chat_template",
                format!("cannot apply the model's chat template: {e}"),
            )
        }),
        // No template in the file: a plain layout most instruction models understand.
        Err(_) => Ok(match &req.system {
            Some(s) => format!("{s}\n\nUser: {}\nAssistant:", req.prompt),
            None => format!("User: {}\nAssistant:", req.prompt),
        }),
    }
}

fn sampler(model: &LlamaModel, req: &Request) -> Result<LlamaSampler, PluginError> {
    let mut chain = Vec::new();
    if req.repeat_penalty != 1.0 {
        chain.push(LlamaSampler::penalties(
            model.n_vocab(),
            64,
            req.repeat_penalty,
            0.0,
            0.0,
        ));
    }
    let grammar = match (&req.json_schema, &req.grammar) {
        (Some(schema), _) => Some(
            llama_cpp_2::json_schema_to_grammar(&schema.to_string()).map_err(|e| {
                err(
                    "json_schema",
                    format!("cannot turn the schema into a grammar: {e}"),
                )
            })?,
        ),
        (None, Some(g)) => Some(g.clone()),
        _ => None,
    };
    if let Some(g) = grammar {
        chain.push(
            LlamaSampler::grammar(model, &g, "root")
                .map_err(|e| err("grammar", format!("invalid grammar: {e}")))?,
        );
    }
    if req.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if req.top_k > 0 {
            chain.push(LlamaSampler::top_k(req.top_k));
        }
        chain.push(LlamaSampler::top_p(req.top_p, 1));
        chain.push(LlamaSampler::temp(req.temperature));
        chain.push(LlamaSampler::dist(req.seed));
    }
    Ok(LlamaSampler::chain_simple(chain))
}

/// Runs the generation on the calling (blocking) thread.
pub fn generate(
    backend: &LlamaBackend,
    model: &LlamaModel,
    req: &Request,
    cancel: &CancellationToken,
    progress: &dyn Fn(f32),
) -> Result<Value, PluginError> {
    let text = prompt_text(model, req)?;
    let vocab = model.vocab();
    let tokens = vocab.tokenize(text.as_bytes(), true, true);
    if tokens.is_empty() {
        return Err(err("bad_prompt", "the prompt is empty"));
    }
    let train = model.n_ctx_train().max(512);
    let wanted = req
        .context
        .unwrap_or(tokens.len() as u32 + req.max_tokens + 8);
    if tokens.len() as u32 >= train {
        return Err(err(
            "prompt_too_long",
            format!(
                "the prompt has {} tokens; the model's context is {train}",
                tokens.len()
            ),
        ));
    }
    let n_ctx = wanted.min(train).max(tokens.len() as u32 + 1);
    let threads = req.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() as i32)
            .unwrap_or(2)
    });
    let n_batch = (tokens.len() as u32).clamp(64, 2048);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(n_batch)
        .with_n_ubatch(n_batch)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = model.new_context(backend, params).map_err(|e| {
        PluginError::new("context", format!("cannot create a llama.cpp context: {e}"))
    })?;
    let mut sampler = sampler(model, req)?;

    // Prompt evaluation, in batches of n_batch tokens.
    let started = Instant::now();
    let mut batch = LlamaBatch::new(n_batch as usize, 1);
    let last = tokens.len() - 1;
    for (chunk_i, chunk) in tokens.chunks(n_batch as usize).enumerate() {
        batch.clear();
        for (j, t) in chunk.iter().enumerate() {
            let pos = chunk_i * n_batch as usize + j;
            batch
                .add(*t, pos as i32, &[0], pos == last)
                .map_err(|e| PluginError::new("decode", e.to_string()))?;
        }
        ctx.decode(&mut batch)
            .map_err(|e| PluginError::new("decode", format!("prompt evaluation failed: {e}")))?;
    }
    let prompt_secs = started.elapsed().as_secs_f64();

    // Generation.
    let gen_started = Instant::now();
    let mut out: Vec<u8> = Vec::new();
    let mut n_gen: u32 = 0;
    let mut pos = tokens.len() as i32;
    let mut finish = "length";
    let mut cut: Option<usize> = None;
    while n_gen < req.max_tokens {
        if cancel.is_cancelled() {
            return Err(PluginError::cancelled());
        }
        if pos as u32 >= n_ctx {
            finish = "context";
            break;
        }
        let token = sampler.sample(&ctx, batch.n_tokens() - 1);
        if vocab.is_eog(token) {
            finish = "stop";
            break;
        }
        out.extend(vocab.token_to_piece(token, false, None));
        n_gen += 1;
        if !req.stop.is_empty() {
            let so_far = String::from_utf8_lossy(&out);
            if let Some(i) = req
                .stop
                .iter()
                .filter_map(|s| so_far.find(s.as_str()))
                .min()
            {
                cut = Some(i);
                finish = "stop";
                break;
            }
        }
        if n_gen.is_multiple_of(16) {
            progress(n_gen as f32 / req.max_tokens as f32);
        }
        batch.clear();
        batch
            .add(token, pos, &[0], true)
            .map_err(|e| PluginError::new("decode", e.to_string()))?;
        pos += 1;
        ctx.decode(&mut batch)
            .map_err(|e| PluginError::new("decode", format!("generation failed: {e}")))?;
    }
    let gen_secs = gen_started.elapsed().as_secs_f64();
    let mut text = String::from_utf8_lossy(&out).into_owned();
    if let Some(i) = cut {
        text.truncate(i);
    }
    let mut result = json!({
        "text": text,
        "prompt_tokens": tokens.len(),
        "completion_tokens": n_gen,
        "prompt_tokens_per_s": if prompt_secs > 0.0 { tokens.len() as f64 / prompt_secs } else { 0.0 },
        "tokens_per_s": if gen_secs > 0.0 { n_gen as f64 / gen_secs } else { 0.0 },
        "finish_reason": finish,
    });
    if let Some(schema) = &req.json_schema {
        let parsed: Value = serde_json::from_str(text.trim()).map_err(|e| {
            let mut e = PluginError::fatal(
                "invalid_json",
                format!(
                    "the model's output is not complete JSON ({e}); it stopped because of {finish}"
                ),
            );
            if finish == "length" {
                e = e.with_help(format!("raise `max_tokens` (now {})", req.max_tokens));
            }
            e
        })?;
        if let Ok(v) = jsonschema::validator_for(schema) {
            if let Some(first) = v.iter_errors(&parsed).next() {
                return Err(PluginError::fatal(
                    "schema_violation",
                    format!("the output does not match `json_schema`: {first}"),
                ));
            }
        }
        result["json"] = parsed;
    }
    Ok(result)
}

//! A call's settings and result, its prompt and sampler, scoring `choices`, checking JSON.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use mediaflow_plugin_api::{JsonSchema, Map, PluginError, Value};
use serde::{Deserialize, Serialize};

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
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// A catalog name (`mediaflow models list`), a name given to `mediaflow models add`, or a
    /// path to a GGUF file.
    pub model: String,
    /// The user message (or the whole prompt with `raw: true`).
    pub prompt: String,
    /// System message.
    #[serde(default)]
    pub system: Option<String>,
    /// Send `prompt` as is, without the model's chat template.
    #[serde(default)]
    pub raw: bool,
    /// Most tokens to generate.
    #[serde(default = "d_max_tokens")]
    #[schemars(range(min = 1, max = 32768))]
    pub max_tokens: u32,
    /// 0 = greedy (deterministic).
    #[serde(default = "d_temperature")]
    #[schemars(range(min = 0, max = 5))]
    pub temperature: f32,
    /// Nucleus sampling: keep the most likely tokens up to this probability mass.
    #[serde(default = "d_top_p")]
    #[schemars(range(max = 1), extend("exclusiveMinimum" = 0))]
    pub top_p: f32,
    /// Sample among this many most likely tokens (0 = all).
    #[serde(default = "d_top_k")]
    #[schemars(range(min = 0))]
    pub top_k: i32,
    /// Penalty for repeating recent tokens (1.0 = off).
    #[serde(default = "d_repeat")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub repeat_penalty: f32,
    /// Seed for sampling, so sampled runs repeat too.
    #[serde(default = "d_seed")]
    pub seed: u32,
    /// Stop before any of these strings.
    #[serde(default)]
    #[schemars(inner(length(min = 1)))]
    pub stop: Vec<String>,
    /// Constrain the output to JSON valid under this schema; the `json` output holds it
    /// parsed.
    #[serde(default)]
    pub json_schema: Option<Map<String, Value>>,
    /// Instead of generating, score these answers as continuations of the prompt (their
    /// log-likelihood under the model): `text` is the likeliest, `choices` gives each
    /// one's probability among them. For zero-shot classification.
    #[serde(default)]
    #[schemars(inner(length(min = 1)))]
    pub choices: Vec<String>,
    /// Ground the output in this text (the story it is about): names, numbers and
    /// quotations must occur in it. Tokens that would start a name or number the text does
    /// not have are masked while decoding; what still gets through is listed in
    /// `ungrounded`. An empty text allows no names or numbers at all.
    #[serde(default)]
    pub ground_in: Option<String>,
    /// With `json_schema`: the top-level fields grounding checks (default: every string).
    #[serde(default)]
    pub ground_fields: Vec<String>,
    /// A GBNF grammar (root rule `root`) constraining the output.
    #[serde(default)]
    pub grammar: Option<String>,
    /// CPU threads (default: all cores).
    #[serde(default)]
    #[schemars(range(min = 1, max = 256))]
    pub threads: Option<i32>,
    /// Context window in tokens (default: prompt + max_tokens).
    #[serde(default)]
    #[schemars(range(min = 128))]
    pub context: Option<u32>,
}

/// What one generation gives.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Generated {
    /// The generated text.
    pub text: String,
    /// The output parsed as JSON, with `json_schema`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
    /// Tokens in the prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Prompt evaluation speed.
    pub prompt_tokens_per_s: f64,
    /// Generation speed.
    pub tokens_per_s: f64,
    /// `stop`, `length`, `context`, `choice` (with `choices`), or `budget` (with
    /// `json_schema`: the output was closed with the shortest valid ending when
    /// `max_tokens` ran low).
    pub finish_reason: String,
    /// With `json_schema`: what the decoder changed to keep the output valid (closed at
    /// the budget, cut a repeated array item, cut a string that repeated itself).
    pub repairs: Vec<String>,
    /// With `ground_in`: the names, numbers and quotations in the checked output that the
    /// source does not hold, as written (empty when everything is grounded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ungrounded: Option<Vec<String>>,
    /// With `choices`: each choice's probability among them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choices: Option<BTreeMap<String, f64>>,
}

pub fn per_second(n: u32, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

fn err(code: &str, msg: impl Into<String>) -> PluginError {
    PluginError::new(code, msg)
}

/// The text the model sees: the chat template from the GGUF metadata, unless `raw`.
pub fn prompt_text(model: &LlamaModel, req: &Request) -> Result<String, PluginError> {
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

/// The sampler chain; `guided`: the structured decoder filters the candidates, so no grammar.
pub fn sampler(
    model: &LlamaModel,
    req: &Request,
    guided: bool,
) -> Result<LlamaSampler, PluginError> {
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
            llama_cpp_2::json_schema_to_grammar(&Value::Object(schema.clone()).to_string())
                .map_err(|e| {
                    err(
                        "json_schema",
                        format!("cannot turn the schema into a grammar: {e}"),
                    )
                })?,
        ),
        (None, Some(g)) => Some(g.clone()),
        _ => None,
    };
    if let Some(g) = grammar.filter(|_| !guided) {
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

/// A call's prompt as tokens, and the context it needs.
pub struct Prepared {
    pub tokens: Vec<LlamaToken>,
    /// Positions the call may use: prompt and generation (`context`, or prompt +
    /// `max_tokens`), at most the model's training context.
    pub window: u32,
    pub threads: i32,
}

/// Tokenizes the prompt and works out the call's context window.
pub fn prepare(model: &LlamaModel, req: &Request) -> Result<Prepared, PluginError> {
    let text = prompt_text(model, req)?;
    let tokens = model.vocab().tokenize(text.as_bytes(), true, true);
    if tokens.is_empty() {
        return Err(err("bad_prompt", "the prompt is empty"));
    }
    let train = model.n_ctx_train().max(512);
    if tokens.len() as u32 >= train {
        return Err(err(
            "prompt_too_long",
            format!(
                "the prompt has {} tokens; the model's context is {train}",
                tokens.len()
            ),
        ));
    }
    let continuation = match req.choices.iter().map(String::len).max() {
        // A choice has at most as many tokens as bytes.
        Some(longest) => longest as u32,
        None => req.max_tokens,
    };
    let wanted = req
        .context
        .unwrap_or(tokens.len() as u32 + continuation + 8);
    let window = wanted.min(train).max(tokens.len() as u32 + 1);
    let threads = req.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() as i32)
            .unwrap_or(2)
    });
    Ok(Prepared {
        tokens,
        window,
        threads,
    })
}

/// A context of `n_ctx` positions for `seqs` sequences of `n_ctx / seqs` each.
pub fn context<'m>(
    backend: &LlamaBackend,
    model: &'m LlamaModel,
    n_ctx: u32,
    seqs: u32,
    n_batch: u32,
    threads: i32,
) -> Result<LlamaContext<'m>, PluginError> {
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_seq_max(seqs)
        .with_n_batch(n_batch)
        .with_n_ubatch(n_batch.min(512))
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    model.new_context(backend, params).map_err(|e| {
        PluginError::new("context", format!("cannot create a llama.cpp context: {e}")).retryable()
    })
}

/// With `choices`: scores each as the prompt's continuation, on a context of its own.
pub fn score_choices(
    backend: &LlamaBackend,
    model: &LlamaModel,
    req: &Request,
    prepared: &Prepared,
) -> Result<Generated, PluginError> {
    let tokens = &prepared.tokens;
    let choices = crate::choices::tokenize(model, &req.choices)?;
    let n_batch = (tokens.len() as u32).clamp(64, 2048);
    let mut ctx = context(
        backend,
        model,
        prepared.window,
        1,
        n_batch,
        prepared.threads,
    )?;
    let started = Instant::now();
    let mut batch = LlamaBatch::new(n_batch as usize, 1);
    let last = tokens.len() - 1;
    for (chunk_i, chunk) in tokens.chunks(n_batch as usize).enumerate() {
        batch.clear();
        for (j, t) in chunk.iter().enumerate() {
            let pos = chunk_i * n_batch as usize + j;
            batch
                .add(*t, pos as i32, &[0], pos == last)
                .map_err(|e| PluginError::new("decode", e.to_string()).retryable())?;
        }
        ctx.decode(&mut batch).map_err(|e| {
            PluginError::new("decode", format!("prompt evaluation failed: {e}")).retryable()
        })?;
    }
    let prompt_tokens_per_s = per_second(tokens.len() as u32, started.elapsed().as_secs_f64());
    let last_index = batch.n_tokens() - 1;
    let logliks = crate::choices::score(&mut ctx, tokens.len(), last_index, &choices)?;
    let probs = crate::choices::probabilities(&logliks);
    let best = probs
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    Ok(Generated {
        text: req.choices[best].clone(),
        json: None,
        prompt_tokens: tokens.len() as u32,
        completion_tokens: 0,
        prompt_tokens_per_s,
        tokens_per_s: 0.0,
        finish_reason: "choice".to_owned(),
        repairs: Vec::new(),
        ungrounded: None,
        choices: Some(req.choices.iter().cloned().zip(probs).collect()),
    })
}

/// Parses and validates `result`'s text against `schema` (a step's `json_schema`), setting
/// `result.json`. Runs after the generation, so a failure can still log the text.
pub fn structured(
    schema: Option<&Map<String, Value>>,
    max_tokens: u32,
    result: &mut Generated,
) -> Result<(), PluginError> {
    if let Some(schema) = schema {
        let parsed: Value = serde_json::from_str(result.text.trim()).map_err(|e| {
            let mut e = PluginError::new(
                "invalid_json",
                format!(
                    "the model's output is not complete JSON ({e}); it stopped because of {}",
                    result.finish_reason
                ),
            );
            if result.finish_reason == "length" {
                e = e.with_help(format!("raise `max_tokens` (now {max_tokens})"));
            }
            e
        })?;
        if let Ok(v) = jsonschema::validator_for(&Value::Object(schema.clone())) {
            if let Some(first) = v.iter_errors(&parsed).next() {
                return Err(PluginError::new(
                    "schema_violation",
                    format!("the output does not match `json_schema`: {first}"),
                ));
            }
        }
        result.json = Some(parsed);
    }
    Ok(())
}

//! One call as a sequence of a (shared) llama.cpp context: its prompt waiting to be
//! decoded, then a token per step, sampled freely or chosen by the guided decoder.

use std::sync::Arc;
use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use mediaflow_plugin_api::{CancellationToken, PluginError};

use crate::generate::{per_second, sampler, Generated, Prepared, Request};
use crate::ground::Source;
use crate::guided::{cancelled, Guided, GuidedText, Next, Setup};
use crate::json::Node;

/// A call waiting for, or in, a batch.
pub struct Job {
    pub req: Request,
    pub prepared: Prepared,
    /// The compiled `json_schema`, when the structured decoder enforces it.
    pub guide: Option<Arc<Node>>,
    pub model: Arc<LlamaModel>,
    pub cancel: CancellationToken,
    pub progress: Box<dyn Fn(f32) + Send>,
    pub reply: tokio::sync::oneshot::Sender<Result<Done, PluginError>>,
}

/// A finished call: its result, and the most sequences it was decoded together with
/// (itself included).
pub struct Done {
    pub generated: Generated,
    pub batched_with: usize,
}

/// Free text sampled by the step's sampler chain (which holds the grammar, if any).
struct Plain<'m> {
    model: &'m LlamaModel,
    out: Vec<u8>,
    generated: u32,
    pos: u32,
    window: u32,
    max_tokens: u32,
    stop: Vec<String>,
    cancel: CancellationToken,
}

impl Plain<'_> {
    fn step(
        &mut self,
        ctx: &LlamaContext,
        idx: i32,
        sampler: &mut LlamaSampler,
    ) -> Result<Next<GuidedText>, PluginError> {
        if self.cancel.is_cancelled() {
            return Err(cancelled(self.generated as usize, self.max_tokens));
        }
        if self.pos >= self.window {
            return Ok(self.done("context", None));
        }
        let vocab = self.model.vocab();
        let token = sampler.sample(ctx, idx);
        if vocab.is_eog(token) {
            return Ok(self.done("stop", None));
        }
        self.out.extend(vocab.token_to_piece(token, false, None));
        self.generated += 1;
        if !self.stop.is_empty() {
            let so_far = String::from_utf8_lossy(&self.out);
            let cut = (self.stop.iter())
                .filter_map(|s| so_far.find(s.as_str()))
                .min();
            if cut.is_some() {
                return Ok(self.done("stop", cut));
            }
        }
        if self.generated >= self.max_tokens {
            return Ok(self.done("length", None));
        }
        let pos = self.pos;
        self.pos += 1;
        Ok(Next::Feed(vec![token], pos))
    }

    fn done(&mut self, finish: &'static str, cut: Option<usize>) -> Next<GuidedText> {
        let mut text = String::from_utf8_lossy(&self.out).into_owned();
        if let Some(i) = cut {
            text.truncate(i);
        }
        Next::Done(GuidedText {
            text,
            tokens: self.generated,
            finish,
            repairs: Vec::new(),
        })
    }
}

enum Decoder<'m> {
    Plain(Plain<'m>),
    Guided(Box<Guided<'m>>),
}

/// A call being decoded as sequence `id` of a context.
pub struct Sequence<'m> {
    pub id: i32,
    /// Tokens to decode next, from position `next_pos`; the last one's logits drive the
    /// next step.
    pub pending: Vec<LlamaToken>,
    pub next_pos: u32,
    prompt_tokens: u32,
    max_tokens: u32,
    decoder: Decoder<'m>,
    sampler: LlamaSampler,
    progress: Box<dyn Fn(f32) + Send>,
    reply: tokio::sync::oneshot::Sender<Result<Done, PluginError>>,
    admitted: Instant,
    first_logits: Option<Instant>,
    prompt_tokens_per_s: f64,
    pub batched_with: usize,
    steps: u32,
}

/// How `step` left a sequence.
pub enum Stepped {
    Going,
    Finished(Result<GuidedText, PluginError>),
}

impl<'m> Sequence<'m> {
    /// Sets up `job` as sequence `id` of a context of `model`, its prompt pending; a call
    /// that cannot start is answered with its error here.
    pub fn start(id: i32, model: &'m LlamaModel, job: Job) -> Option<Self> {
        let Job {
            req,
            prepared,
            guide,
            cancel,
            progress,
            reply,
            ..
        } = job;
        if cancel.is_cancelled() {
            let _ = reply.send(Err(cancelled(0, req.max_tokens)));
            return None;
        }
        let guided = guide.is_some() || req.ground_in.is_some();
        let sampler = match sampler(model, &req, guided) {
            Ok(s) => s,
            Err(e) => {
                let _ = reply.send(Err(e));
                return None;
            }
        };
        let prompt_tokens = prepared.tokens.len() as u32;
        let decoder = if guided {
            let keep = match (req.temperature <= 0.0, req.repeat_penalty != 1.0) {
                (true, false) => 1,
                (true, true) => 16,
                _ => usize::try_from(req.top_k)
                    .ok()
                    .filter(|k| *k > 0)
                    .unwrap_or(40),
            };
            let setup = Setup {
                model,
                seq: id,
                prompt_tokens: prompt_tokens as usize,
                n_ctx: prepared.window,
                max_tokens: req.max_tokens,
                keep,
                cancel,
                ground: req.ground_in.as_deref().map(Source::new),
                fields: req.ground_fields,
                stop: req.stop,
            };
            Decoder::Guided(Box::new(Guided::new(setup, guide)))
        } else {
            Decoder::Plain(Plain {
                model,
                out: Vec::new(),
                generated: 0,
                pos: prompt_tokens,
                window: prepared.window,
                max_tokens: req.max_tokens,
                stop: req.stop,
                cancel,
            })
        };
        Some(Sequence {
            id,
            pending: prepared.tokens,
            next_pos: 0,
            prompt_tokens,
            max_tokens: req.max_tokens,
            decoder,
            sampler,
            progress,
            reply,
            admitted: Instant::now(),
            first_logits: None,
            prompt_tokens_per_s: 0.0,
            batched_with: 1,
            steps: 0,
        })
    }

    /// The next token(s), from the logits at batch index `idx`.
    pub fn step(&mut self, ctx: &mut LlamaContext, idx: i32) -> Stepped {
        let now = Instant::now();
        if self.first_logits.is_none() {
            self.first_logits = Some(now);
            let secs = (now - self.admitted).as_secs_f64();
            self.prompt_tokens_per_s = per_second(self.prompt_tokens, secs);
        }
        let next = match &mut self.decoder {
            Decoder::Plain(p) => p.step(ctx, idx, &mut self.sampler),
            Decoder::Guided(g) => g.step(ctx, idx, &mut self.sampler),
        };
        self.steps += 1;
        match next {
            Ok(Next::Feed(tokens, pos)) => {
                self.pending = tokens;
                self.next_pos = pos;
                if self.steps.is_multiple_of(16) {
                    let done = match &self.decoder {
                        Decoder::Plain(p) => p.generated as usize,
                        Decoder::Guided(g) => g.generated(),
                    };
                    (self.progress)(done as f32 / self.max_tokens as f32);
                }
                Stepped::Going
            }
            Ok(Next::Done(out)) => Stepped::Finished(Ok(out)),
            Err(e) => Stepped::Finished(Err(e)),
        }
    }

    /// Answers the call with what its decoding gave.
    pub fn answer(self, result: Result<GuidedText, PluginError>) {
        let gen_secs = self.first_logits.map_or(0.0, |t| t.elapsed().as_secs_f64());
        let result = result.map(|out| Done {
            generated: Generated {
                json: None,
                prompt_tokens: self.prompt_tokens,
                completion_tokens: out.tokens,
                prompt_tokens_per_s: self.prompt_tokens_per_s,
                choices: None,
                tokens_per_s: per_second(out.tokens, gen_secs),
                finish_reason: out.finish.to_owned(),
                repairs: out.repairs,
                ungrounded: None,
                text: out.text,
            },
            batched_with: self.batched_with,
        });
        let _ = self.reply.send(result);
    }
}

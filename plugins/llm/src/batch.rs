//! Continuous batching: concurrent calls for one model are decoded together, as sequences
//! of one llama.cpp context, each a token per batch; a new call joins while others run.
//! The context is sized from a KV-cache memory budget: `MEDIAFLOW_LLM_SEQUENCES`
//! sequences (default 8) of an equal window each, within `MEDIAFLOW_LLM_KV_MB` (default
//! 512). A call that needs a longer window than that, or that scores `choices`, runs on a
//! context of its own, in turn.

use std::collections::VecDeque;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use mediaflow_plugin_api::PluginError;

use crate::generate::{context, score_choices};
use crate::sequence::{Done, Job, Sequence, Stepped};

/// Tokens decoded in one batch at most (prompts are read in chunks of what is left).
const N_BATCH: usize = 512;
/// How long a context is kept for the next call after the last one ends.
const IDLE: Duration = Duration::from_secs(30);

/// How many calls are decoded together, and the KV-cache memory they share.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub sequences: u32,
    pub kv_bytes: u64,
}

impl Limits {
    /// From `MEDIAFLOW_LLM_SEQUENCES` and `MEDIAFLOW_LLM_KV_MB`.
    pub fn from_env() -> Self {
        let num = |key: &str, default: u64| {
            std::env::var(key)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|n| *n > 0)
                .unwrap_or(default)
        };
        Limits {
            sequences: num("MEDIAFLOW_LLM_SEQUENCES", 8).min(64) as u32,
            kv_bytes: num("MEDIAFLOW_LLM_KV_MB", 512) * 1024 * 1024,
        }
    }

    /// Sequences and the window of each, for a model whose K and V take `per_token` bytes
    /// a position and that was trained on `train` positions: the budget shared out, at
    /// least 512 positions a sequence (fewer sequences if need be), at most `train`.
    pub fn shape(&self, per_token: u64, train: u32) -> (u32, u32) {
        let positions = self.kv_bytes / per_token.max(1);
        let train = u64::from(train.max(512));
        let mut seqs = u64::from(self.sequences.max(1));
        if positions / seqs < 512 {
            seqs = (positions / 512).max(1);
        }
        let window = (positions / seqs).min(train) / 256 * 256;
        (seqs as u32, window.max(256) as u32)
    }
}

/// The f16 K and V cache bytes of one position, from the model's shape.
fn kv_bytes_per_token(model: &LlamaModel) -> u64 {
    let arch = model
        .meta_val_str("general.architecture")
        .unwrap_or_default();
    let meta = |key: &str| {
        model
            .meta_val_str(&format!("{arch}.attention.{key}"))
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
    };
    let head = u64::from(model.n_embd().max(1) as u32) / u64::from(model.n_head().max(1));
    let k = meta("key_length").unwrap_or(head);
    let v = meta("value_length").unwrap_or(head);
    u64::from(model.n_layer()) * u64::from(model.n_head_kv().max(1)) * (k + v) * 2
}

/// The batching thread's handle: calls go in, each answered when its sequence ends.
pub struct Batcher {
    jobs: Mutex<Sender<Job>>,
}

impl Batcher {
    pub fn start(backend: Arc<LlamaBackend>, limits: Limits) -> Self {
        let (tx, rx) = channel::<Job>();
        std::thread::Builder::new()
            .name("llama".to_owned())
            .spawn(move || serve(&backend, &limits, &rx))
            .ok();
        Batcher {
            jobs: Mutex::new(tx),
        }
    }

    /// Queues `job` and waits for its answer; `None` if the thread is gone (it panicked).
    pub async fn run(
        &self,
        build: impl FnOnce(tokio::sync::oneshot::Sender<Result<Done, PluginError>>) -> Job,
    ) -> Option<Result<Done, PluginError>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = (self.jobs.lock())
            .map(|j| j.send(build(tx)).is_ok())
            .unwrap_or(false);
        if !sent {
            return None;
        }
        rx.await.ok()
    }
}

/// Takes calls in order of arrival: a session per model (and thread count) decodes the
/// run of calls at the front of the queue that share it.
fn serve(backend: &LlamaBackend, limits: &Limits, rx: &Receiver<Job>) {
    let mut queue = VecDeque::new();
    loop {
        if queue.is_empty() {
            match rx.recv() {
                Ok(job) => queue.push_back(job),
                Err(_) => return,
            }
        }
        let Some(front) = queue.front() else { continue };
        let (model, threads) = (front.model.clone(), front.prepared.threads);
        if !session(backend, limits, &model, threads, &mut queue, rx) {
            return;
        }
    }
}

fn same(job: &Job, model: &Arc<LlamaModel>, threads: i32) -> bool {
    Arc::ptr_eq(&job.model, model) && job.prepared.threads == threads
}

/// Decodes the calls for `model` until none is running and the next is for another
/// model (or none came for [`IDLE`]). `false` when the process is shutting down.
fn session(
    backend: &LlamaBackend,
    limits: &Limits,
    model: &Arc<LlamaModel>,
    threads: i32,
    queue: &mut VecDeque<Job>,
    rx: &Receiver<Job>,
) -> bool {
    let (seqs, window) = limits.shape(kv_bytes_per_token(model), model.n_ctx_train());
    let mut slots: Option<Slots> = None;
    loop {
        while let Ok(job) = rx.try_recv() {
            queue.push_back(job);
        }
        while let Some(front) = queue.front() {
            if !same(front, model, threads) {
                break;
            }
            let alone = !front.req.choices.is_empty() || front.prepared.window > window;
            if alone {
                // In turn: once the calls before it have finished.
                if slots.as_ref().is_some_and(|s| !s.active.is_empty()) {
                    break;
                }
                if let Some(job) = queue.pop_front() {
                    run_alone(backend, model, job);
                }
                continue;
            }
            if slots.as_ref().is_some_and(|s| s.free.is_empty()) {
                break;
            }
            let Some(job) = queue.pop_front() else { break };
            if slots.is_none() {
                match Slots::new(backend, model, seqs, window, threads) {
                    Ok(s) => slots = Some(s),
                    Err(e) => {
                        let _ = job.reply.send(Err(e));
                        continue;
                    }
                }
            }
            if let Some(s) = slots.as_mut() {
                s.admit(job);
            }
        }
        match slots.as_mut() {
            Some(s) if !s.active.is_empty() => s.tick(),
            _ if !queue.is_empty() => return true,
            _ => match rx.recv_timeout(IDLE) {
                Ok(job) => queue.push_back(job),
                Err(RecvTimeoutError::Timeout) => return true,
                Err(RecvTimeoutError::Disconnected) => return false,
            },
        }
    }
}

/// A call that does not fit the shared context: on one of its own.
fn run_alone(backend: &LlamaBackend, model: &LlamaModel, job: Job) {
    if !job.req.choices.is_empty() {
        let out = score_choices(backend, model, &job.req, &job.prepared).map(|generated| Done {
            generated,
            batched_with: 1,
        });
        let _ = job.reply.send(out);
        return;
    }
    let window = job.prepared.window;
    match Slots::new(backend, model, 1, window, job.prepared.threads) {
        Ok(mut slots) => {
            slots.admit(job);
            while !slots.active.is_empty() {
                slots.tick();
            }
        }
        Err(e) => {
            let _ = job.reply.send(Err(e));
        }
    }
}

/// A context of equal windows, one per sequence, and the calls decoding in it.
struct Slots<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    /// Sequence ids not in use.
    free: Vec<i32>,
    active: Vec<Sequence<'m>>,
}

impl<'m> Slots<'m> {
    fn new(
        backend: &LlamaBackend,
        model: &'m LlamaModel,
        seqs: u32,
        window: u32,
        threads: i32,
    ) -> Result<Self, PluginError> {
        let ctx = context(backend, model, window * seqs, seqs, N_BATCH as u32, threads)?;
        Ok(Slots {
            model,
            ctx,
            batch: LlamaBatch::new(N_BATCH, 1),
            free: (0..seqs as i32).rev().collect(),
            active: Vec::new(),
        })
    }

    fn admit(&mut self, job: Job) {
        let Some(id) = self.free.pop() else {
            let _ = job.reply.send(Err(PluginError::new(
                "busy",
                "no free sequence in the batch",
            )
            .retryable()));
            return;
        };
        match Sequence::start(id, self.model, job) {
            Some(seq) => self.active.push(seq),
            None => self.free.push(id),
        }
    }

    /// One batch: the pending tokens of every sequence (generated tokens first, then
    /// prompts, in chunks of what is left), decoded together; then each sequence whose
    /// pending tokens were all decoded takes its next step.
    fn tick(&mut self) {
        self.batch.clear();
        let mut room = N_BATCH;
        let mut ready = Vec::new();
        let mut order: Vec<usize> = (0..self.active.len()).collect();
        order.sort_by_key(|i| self.active[*i].pending.len());
        let mut together = 0;
        for i in order {
            let s = &mut self.active[i];
            if room == 0 || s.pending.is_empty() {
                continue;
            }
            let take = s.pending.len().min(room);
            let all = take == s.pending.len();
            let pos = s.next_pos as i32;
            for (j, t) in s.pending.drain(..take).enumerate() {
                // Room was checked: the batch holds N_BATCH tokens.
                let _ = self
                    .batch
                    .add(t, pos + j as i32, &[s.id], all && j + 1 == take);
            }
            s.next_pos += take as u32;
            room -= take;
            together += 1;
            if all {
                ready.push((i, self.batch.n_tokens() - 1));
            }
        }
        if let Err(e) = self.ctx.decode(&mut self.batch) {
            for s in std::mem::take(&mut self.active) {
                let _ = self.ctx.clear_kv_cache_seq(Some(s.id as u32), None, None);
                self.free.push(s.id);
                s.answer(Err(PluginError::new(
                    "decode",
                    format!("generation failed: {e}"),
                )
                .retryable()));
            }
            return;
        }
        let mut finished = Vec::new();
        for (i, idx) in ready {
            let s = &mut self.active[i];
            s.batched_with = s.batched_with.max(together);
            if let Stepped::Finished(result) = s.step(&mut self.ctx, idx) {
                finished.push((i, result));
            }
        }
        finished.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
        for (i, result) in finished {
            let s = self.active.swap_remove(i);
            let _ = self.ctx.clear_kv_cache_seq(Some(s.id as u32), None, None);
            self.free.push(s.id);
            s.answer(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Limits;

    #[test]
    fn the_kv_budget_is_shared_out_in_windows_of_whole_pages() {
        let mb: u64 = 1024 * 1024;
        let limits = |sequences, kv_mb| Limits {
            sequences,
            kv_bytes: kv_mb * mb,
        };
        // SmolLM2-135M: 30 layers, 3 KV heads of 64, f16 K and V: 23,040 bytes a position.
        let smol = 30 * 3 * 128 * 2;
        assert_eq!(limits(8, 512).shape(smol, 8192), (8, 2816));
        // A small budget keeps 512 positions a sequence and gives up sequences.
        assert_eq!(limits(8, 32).shape(smol, 8192), (2, 512));
        // Never more than the model was trained on.
        assert_eq!(limits(1, 4096).shape(smol, 2048), (1, 2048));
        // A budget too small for one window still gives one sequence.
        assert_eq!(limits(8, 1).shape(smol, 8192), (1, 256));
    }
}

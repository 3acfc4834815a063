//! Batching across calls. The engine sends a `for_each`'s items to the plugin process as
//! concurrent calls; each call hands its prepared input to a queue that worker threads (one
//! per core) take from: a worker takes everything that is waiting (up to a batch size),
//! groups it by model and runs each group as one batch, so the cores work on different
//! batches at once. A lone call runs at once, alone: nothing waits for a batch to fill.

use std::panic::AssertUnwindSafe;
use std::sync::{mpsc, Arc, Mutex};

use tokio::sync::oneshot;

/// One call's input, the model it is for (as [`crate::model::key`]), and where its result
/// goes.
struct Job<J, R> {
    group: usize,
    input: J,
    reply: oneshot::Sender<R>,
}

type Queue<J, R> = Arc<Mutex<mpsc::Receiver<Job<J, R>>>>;

/// Runs batches of `J` on worker threads.
pub struct Batcher<J, R> {
    tx: mpsc::Sender<Job<J, R>>,
}

impl<J: Send + 'static, R: Send + 'static> Batcher<J, R> {
    /// Starts `workers` threads (at least 1). `run` gets the inputs of one group (one model)
    /// and returns one result for each, in order; `failed` makes the result every job of a
    /// batch gets when `run` panics.
    pub fn start(
        name: &str,
        workers: usize,
        max_batch: usize,
        run: impl Fn(Vec<J>) -> Vec<R> + Send + Sync + 'static,
        failed: impl Fn(String) -> R + Send + Sync + 'static,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<Job<J, R>>();
        let queue: Queue<J, R> = Arc::new(Mutex::new(rx));
        let run: Arc<dyn Fn(Vec<J>) -> Vec<R> + Send + Sync> = Arc::new(run);
        let failed: Arc<dyn Fn(String) -> R + Send + Sync> = Arc::new(failed);
        for i in 0..workers.max(1) {
            let (queue, run, failed) = (queue.clone(), run.clone(), failed.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || work(&queue, max_batch, &*run, &*failed));
            if let Err(e) = spawned {
                // Without its threads the process cannot work; the host restarts it.
                eprintln!("cannot start the {name} threads: {e}");
                std::process::exit(1);
            }
        }
        Batcher { tx }
    }

    /// Queues `input` for the model `group` and waits for its result; `None` if the
    /// workers are gone.
    pub async fn call(&self, group: usize, input: J) -> Option<R> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job {
                group,
                input,
                reply,
            })
            .ok()?;
        rx.await.ok()
    }
}

/// One worker: takes what is waiting (holding the queue only while it takes), runs it by
/// group, answers every job.
fn work<J, R>(
    queue: &Mutex<mpsc::Receiver<Job<J, R>>>,
    max_batch: usize,
    run: &(dyn Fn(Vec<J>) -> Vec<R> + Send + Sync),
    failed: &(dyn Fn(String) -> R + Send + Sync),
) {
    loop {
        let mut jobs = {
            let rx = queue.lock().unwrap_or_else(|p| p.into_inner());
            let Ok(first) = rx.recv() else {
                return;
            };
            let mut jobs = vec![first];
            while jobs.len() < max_batch.max(1) {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            jobs
        };
        while !jobs.is_empty() {
            let group = jobs[0].group;
            let (mine, rest): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|j| j.group == group);
            jobs = rest;
            let (inputs, replies): (Vec<J>, Vec<_>) =
                mine.into_iter().map(|j| (j.input, j.reply)).unzip();
            let count = inputs.len();
            match std::panic::catch_unwind(AssertUnwindSafe(|| run(inputs))) {
                Ok(results) if results.len() == count => {
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                }
                Ok(results) => {
                    let message = format!(
                        "the batch gave {} results for {count} inputs",
                        results.len()
                    );
                    for reply in replies {
                        let _ = reply.send(failed(message.clone()));
                    }
                }
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "a panic".into());
                    for reply in replies {
                        let _ = reply.send(failed(format!("the model panicked: {message}")));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_share_batches_by_group_and_panics_become_errors() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let batcher = Arc::new(Batcher::start(
            "test-batch",
            2,
            8,
            move |inputs: Vec<i64>| {
                std::thread::sleep(std::time::Duration::from_millis(20));
                seen.lock().unwrap().push(inputs.len());
                assert!(!inputs.contains(&-1), "bad input");
                inputs.into_iter().map(|i| Ok(i * 2)).collect()
            },
            Err::<i64, String>,
        ));
        let calls: Vec<_> = (0..20)
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move { b.call((i % 2) as usize, i).await })
            })
            .collect();
        for (i, c) in calls.into_iter().enumerate() {
            assert_eq!(c.await.unwrap(), Some(Ok(i as i64 * 2)));
        }
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 20);
        assert!(
            sizes.iter().any(|s| *s > 1),
            "some calls were batched: {sizes:?}"
        );
        assert!(sizes.iter().all(|s| *s <= 8));
        let err = batcher.call(0, -1).await.unwrap().unwrap_err();
        assert!(err.contains("the model panicked: bad input"), "{err}");
        assert_eq!(batcher.call(0, 4).await, Some(Ok(8)), "the worker goes on");
    }
}

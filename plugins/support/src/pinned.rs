//! One long-lived thread that runs a plugin's native work, in order.
//!
//! llama.cpp and whisper.cpp (through ggml's OpenMP) keep a team of spinning worker threads
//! per calling thread. Calling them from changing threads, as `spawn_blocking` does, leaves
//! old teams spinning and costs a third of the speed; calling from one thread does not.

use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;

type Job = Box<dyn FnOnce() + Send>;

/// A thread that runs jobs one after another.
pub struct PinnedThread {
    jobs: Mutex<Sender<Job>>,
}

impl PinnedThread {
    /// Starts the thread; `name` shows in debuggers and panics.
    pub fn start(name: &str) -> Self {
        let (tx, rx) = channel::<Job>();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job();
                }
            })
            .ok();
        PinnedThread {
            jobs: Mutex::new(tx),
        }
    }

    /// Runs `f` on the thread and waits for its result without blocking the runtime.
    /// `None` if the thread is gone (it panicked).
    pub async fn run<T, F>(&self, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        let sent = self
            .jobs
            .lock()
            .map(|j| j.send(job).is_ok())
            .unwrap_or(false);
        if !sent {
            return None;
        }
        rx.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_in_order_on_one_named_thread() {
        let thread = PinnedThread::start("pinned-test");
        let mut seen = Vec::new();
        for i in 0..3 {
            let got = thread
                .run(move || {
                    (
                        i,
                        std::thread::current().id(),
                        std::thread::current().name().map(str::to_owned),
                    )
                })
                .await;
            seen.push(got.expect("the thread runs the job"));
        }
        assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(seen.iter().all(|s| s.1 == seen[0].1));
        assert_ne!(seen[0].1, std::thread::current().id());
        assert_eq!(seen[0].2.as_deref(), Some("pinned-test"));
    }

    #[tokio::test]
    async fn a_panicking_job_stops_the_thread() {
        let thread = PinnedThread::start("pinned-panic");
        assert_eq!(thread.run(|| -> u8 { panic!("boom") }).await, None);
        assert_eq!(thread.run(|| 1).await, None);
    }
}

//! What a run reports while it goes: to the caller (progress bars) and to the store (logs).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use mediaflow_plugin_api::{EventSink, LogLevel};
use mediaflow_store::{StepStatus, Store, StoreError};
use tokio::sync::mpsc;

/// Something that happened in a run, for live display.
#[derive(Clone, Debug)]
pub enum Event {
    StepStarted {
        step: String,
        item: Option<usize>,
        attempt: u32,
    },
    StepProgress {
        step: String,
        item: Option<usize>,
        fraction: f32,
        message: Option<String>,
    },
    StepLog {
        step: String,
        item: Option<usize>,
        level: LogLevel,
        message: String,
    },
    StepRetrying {
        step: String,
        item: Option<usize>,
        attempt: u32,
        delay_ms: u64,
        error: String,
    },
    StepFinished {
        step: String,
        item: Option<usize>,
        status: StepStatus,
        duration_ms: i64,
        error: Option<String>,
    },
}

pub(crate) type Events = Option<mpsc::UnboundedSender<Event>>;

pub(crate) fn emit(events: &Events, e: Event) {
    if let Some(tx) = events {
        let _ = tx.send(e);
    }
}

/// A log line on its way to the store.
pub(crate) struct LogLine {
    pub step: String,
    pub item: Option<usize>,
    pub level: LogLevel,
    pub message: String,
}

/// Writes log lines in order on one task; `finish` stores what was sent before it and
/// ends the writer, even while a plugin that never stopped (a native plugin ignoring its
/// cancel, a stuck thread) still holds a sender: its later lines are dropped.
pub(crate) struct LogWriter {
    tx: mpsc::UnboundedSender<LogLine>,
    done: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl LogWriter {
    pub fn start(store: Store, run_id: String) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<LogLine>();
        let done = tokio_util::sync::CancellationToken::new();
        let finished = done.clone();
        let task = tokio::spawn(async move {
            // A log line that cannot be stored must not fail the run. Once the store has
            // stayed unreachable past its retries, the rest are dropped rather than each
            // waiting out the outage again.
            let mut down = false;
            loop {
                let line = tokio::select! {
                    biased;
                    l = rx.recv() => l,
                    _ = finished.cancelled() => {
                        rx.close();
                        rx.recv().await
                    }
                };
                let Some(l) = line else { break };
                if down {
                    continue;
                }
                let stored = store
                    .append_log(&run_id, &l.step, l.item, l.level.as_str(), &l.message)
                    .await;
                if let Err(StoreError::Query(e)) = stored {
                    down = mediaflow_store::is_transient(&e);
                }
            }
        });
        LogWriter { tx, done, task }
    }

    pub fn sender(&self) -> mpsc::UnboundedSender<LogLine> {
        self.tx.clone()
    }

    pub async fn finish(self) {
        drop(self.tx);
        self.done.cancel();
        let _ = self.task.await;
    }
}

/// How much one step attempt may log. A plugin that logs in a tight loop (a hostile
/// WebAssembly guest, a runaway process) costs at most this much storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogQuota {
    pub lines: usize,
    pub bytes: usize,
}

/// Longest single log message stored; longer ones are cut.
pub const MAX_LOG_MESSAGE: usize = 8 << 10;

impl Default for LogQuota {
    fn default() -> Self {
        LogQuota {
            lines: 5_000,
            bytes: 1 << 20,
        }
    }
}

impl LogQuota {
    /// The default, with `MEDIAFLOW_LOG_LINES` and `MEDIAFLOW_LOG_KB` where set.
    pub fn from_env() -> Self {
        let env = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
        };
        let d = LogQuota::default();
        LogQuota {
            lines: env("MEDIAFLOW_LOG_LINES").unwrap_or(d.lines),
            bytes: env("MEDIAFLOW_LOG_KB").map_or(d.bytes, |kb| kb << 10),
        }
    }
}

/// What a step attempt has logged so far.
#[derive(Default)]
struct LogUse {
    lines: AtomicUsize,
    bytes: AtomicUsize,
    over: AtomicBool,
}

/// The [`EventSink`] a step's plugin sees.
pub(crate) struct StepSink {
    pub step: String,
    pub item: Option<usize>,
    pub events: Events,
    pub logs: mpsc::UnboundedSender<LogLine>,
    quota: LogQuota,
    used: LogUse,
}

impl StepSink {
    fn store_line(&self, level: LogLevel, message: String) {
        let _ = self.logs.send(LogLine {
            step: self.step.clone(),
            item: self.item,
            level,
            message: message.clone(),
        });
        emit(
            &self.events,
            Event::StepLog {
                step: self.step.clone(),
                item: self.item,
                level,
                message,
            },
        );
    }
}

impl EventSink for StepSink {
    fn progress(&self, fraction: f32, message: Option<&str>) {
        emit(
            &self.events,
            Event::StepProgress {
                step: self.step.clone(),
                item: self.item,
                fraction,
                message: message.map(str::to_owned),
            },
        );
    }

    fn log(&self, level: LogLevel, message: &str) {
        if self.used.over.load(Ordering::Relaxed) {
            return;
        }
        let message = match message.char_indices().nth(MAX_LOG_MESSAGE) {
            Some((cut, _)) => format!("{}… [cut at {MAX_LOG_MESSAGE} characters]", &message[..cut]),
            None => message.to_owned(),
        };
        let lines = self.used.lines.fetch_add(1, Ordering::Relaxed) + 1;
        let bytes = self.used.bytes.fetch_add(message.len(), Ordering::Relaxed) + message.len();
        if lines > self.quota.lines || bytes > self.quota.bytes {
            if !self.used.over.swap(true, Ordering::Relaxed) {
                self.store_line(
                    LogLevel::Warn,
                    format!(
                        "log_quota: this step logged more than {} lines or {} KiB; further lines are dropped (MEDIAFLOW_LOG_LINES, MEDIAFLOW_LOG_KB)",
                        self.quota.lines,
                        self.quota.bytes >> 10
                    ),
                );
            }
            return;
        }
        self.store_line(level, message);
    }
}

pub(crate) fn sink(
    step: &str,
    item: Option<usize>,
    events: &Events,
    logs: &mpsc::UnboundedSender<LogLine>,
    quota: LogQuota,
) -> Arc<dyn EventSink> {
    Arc::new(StepSink {
        step: step.to_owned(),
        item,
        events: events.clone(),
        logs: logs.clone(),
        quota,
        used: LogUse::default(),
    })
}

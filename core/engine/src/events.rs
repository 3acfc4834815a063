//! What a run reports while it goes: to the caller (progress bars) and to the store (logs).

use std::sync::Arc;

use mediaflow_plugin_api::{EventSink, LogLevel};
use mediaflow_store::{StepStatus, Store};
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

/// Writes log lines in order on one task; `finish` waits until all are stored.
pub(crate) struct LogWriter {
    tx: mpsc::UnboundedSender<LogLine>,
    task: tokio::task::JoinHandle<()>,
}

impl LogWriter {
    pub fn start(store: Store, run_id: String) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<LogLine>();
        let task = tokio::spawn(async move {
            while let Some(l) = rx.recv().await {
                // A log line that cannot be stored must not fail the run.
                let _ = store
                    .append_log(&run_id, &l.step, l.item, l.level.as_str(), &l.message)
                    .await;
            }
        });
        LogWriter { tx, task }
    }

    pub fn sender(&self) -> mpsc::UnboundedSender<LogLine> {
        self.tx.clone()
    }

    pub async fn finish(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}

/// The [`EventSink`] a step's plugin sees.
pub(crate) struct StepSink {
    pub step: String,
    pub item: Option<usize>,
    pub events: Events,
    pub logs: mpsc::UnboundedSender<LogLine>,
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
        let _ = self.logs.send(LogLine {
            step: self.step.clone(),
            item: self.item,
            level,
            message: message.to_owned(),
        });
        emit(
            &self.events,
            Event::StepLog {
                step: self.step.clone(),
                item: self.item,
                level,
                message: message.to_owned(),
            },
        );
    }
}

pub(crate) fn sink(
    step: &str,
    item: Option<usize>,
    events: &Events,
    logs: &mpsc::UnboundedSender<LogLine>,
) -> Arc<dyn EventSink> {
    Arc::new(StepSink {
        step: step.to_owned(),
        item,
        events: events.clone(),
        logs: logs.clone(),
    })
}

//! The runs this process drives: how to cancel each, and its live event stream.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use mediaflow_engine::{Event, RunControl};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// One server-sent event: its `event:` name and its JSON `data:`.
#[derive(Clone, Debug, Serialize)]
pub struct ApiEvent {
    pub event: &'static str,
    pub data: Value,
}

impl ApiEvent {
    pub fn finished(run_id: &str, status: &str) -> Self {
        ApiEvent {
            event: "run_finished",
            data: json!({"run_id": run_id, "status": status}),
        }
    }
}

/// An engine event as the API sends it.
pub fn api_event(e: &Event) -> ApiEvent {
    let (event, data) = match e {
        Event::StepStarted {
            step,
            item,
            attempt,
        } => (
            "step_started",
            json!({"step": step, "item": item, "attempt": attempt}),
        ),
        Event::StepProgress {
            step,
            item,
            fraction,
            message,
        } => (
            "step_progress",
            json!({"step": step, "item": item, "fraction": fraction, "message": message}),
        ),
        Event::StepLog {
            step,
            item,
            level,
            message,
        } => (
            "step_log",
            json!({"step": step, "item": item, "level": level.as_str(), "message": message}),
        ),
        Event::StepRetrying {
            step,
            item,
            attempt,
            delay_ms,
            error,
        } => (
            "step_retrying",
            json!({"step": step, "item": item, "attempt": attempt, "delay_ms": delay_ms, "error": error}),
        ),
        Event::StepFinished {
            step,
            item,
            status,
            duration_ms,
            error,
        } => (
            "step_finished",
            json!({"step": step, "item": item, "status": status.as_str(), "duration_ms": duration_ms, "error": error}),
        ),
    };
    ApiEvent { event, data }
}

struct Live {
    cancel: CancellationToken,
    events: broadcast::Sender<ApiEvent>,
}

/// The runs being driven here, by id.
#[derive(Default)]
pub struct LiveRuns {
    runs: Mutex<HashMap<String, Live>>,
}

/// How many events a slow follower may fall behind before it misses some.
const EVENT_BUFFER: usize = 4096;

impl LiveRuns {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        // A panic while holding the lock cannot leave the map half-changed: every
        // critical section is one insert, remove or lookup.
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `run_id` and returns the control to drive it with, and the task that
    /// forwards its engine events to followers (await it before [`LiveRuns::finish`]).
    /// `None` when `run_id` is driven here already.
    pub fn start(
        &self,
        run_id: &str,
        observe: Box<dyn Fn(&Event) + Send + Sync>,
    ) -> Option<(RunControl, tokio::task::JoinHandle<()>)> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let cancel = CancellationToken::new();
        {
            let mut runs = self.lock();
            if runs.contains_key(run_id) {
                return None;
            }
            runs.insert(
                run_id.to_owned(),
                Live {
                    cancel: cancel.clone(),
                    events: events.clone(),
                },
            );
        }
        let forward = tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                observe(&e);
                let _ = events.send(api_event(&e));
            }
        });
        let ctl = RunControl {
            cancel,
            events: Some(tx),
        };
        Some((ctl, forward))
    }

    /// Ends `run_id`: followers get `run_finished` and their streams end. The forwarder
    /// is given a moment to pass on the run's last events first (a plugin that never
    /// stopped may hold an event sender for ever, so it is not waited on longer).
    pub async fn finish(&self, run_id: &str, status: &str, forward: tokio::task::JoinHandle<()>) {
        let _ = tokio::time::timeout(Duration::from_secs(2), forward).await;
        let mut runs = self.lock();
        if let Some(live) = runs.remove(run_id) {
            let _ = live.events.send(ApiEvent::finished(run_id, status));
        }
    }

    /// Cancels `run_id` if it is driven here; `false` if it is not.
    pub fn cancel(&self, run_id: &str) -> bool {
        match self.lock().get(run_id) {
            Some(live) => {
                live.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Follows `run_id`'s events from now on, if it is driven here.
    pub fn subscribe(&self, run_id: &str) -> Option<broadcast::Receiver<ApiEvent>> {
        self.lock().get(run_id).map(|l| l.events.subscribe())
    }

    pub fn is_live(&self, run_id: &str) -> bool {
        self.lock().contains_key(run_id)
    }

    pub fn count(&self) -> usize {
        self.lock().len()
    }
}

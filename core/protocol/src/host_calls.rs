//! The plugin side of host calls: what a plugin process's `RunContext` offers as its
//! `llm()` and `vectors()`, each request a [`PluginMessage::HostCall`] answered by the
//! host's [`HostMessage::HostReply`](crate::HostMessage::HostReply).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mediaflow_plugin_api::{
    EmbeddingModel, LlmProvider, PluginError, RunContext, SearchMode, SearchResult, Value,
    VectorRecord, Vectors,
};
use tokio::sync::{mpsc, oneshot};

use crate::{HostRequest, PluginMessage};

type Reply = Result<Value, PluginError>;

/// The host calls in flight, by number, across all runs of the process.
#[derive(Default)]
pub(crate) struct Pending {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
}

impl Pending {
    /// Hands the host's answer to the call waiting for it (a late answer for a call
    /// whose run has ended is dropped).
    pub(crate) fn answer(&self, call: u64, result: Reply) {
        let waiting = self.waiting.lock().ok().and_then(|mut w| w.remove(&call));
        if let Some(tx) = waiting {
            let _ = tx.send(result);
        }
    }
}

/// Host calls made on behalf of one run (`id`).
pub(crate) struct HostCalls {
    pub(crate) id: u64,
    pub(crate) out: mpsc::UnboundedSender<PluginMessage>,
    pub(crate) pending: Arc<Pending>,
}

impl HostCalls {
    async fn call(&self, request: HostRequest, cx: &RunContext) -> Reply {
        let call = self.pending.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = self.pending.waiting.lock() {
            w.insert(call, tx);
        }
        let sent = self.out.send(PluginMessage::HostCall {
            id: self.id,
            call,
            request: Box::new(request),
        });
        let gone = || PluginError::new("host_gone", "the host did not answer: it has gone");
        if sent.is_err() {
            self.pending.answer(call, Err(gone()));
        }
        tokio::select! {
            r = rx => r.unwrap_or_else(|_| Err(gone())),
            _ = cx.cancelled() => {
                self.pending.answer(call, Err(PluginError::new("cancelled", "cancelled")));
                Err(PluginError::new("cancelled", "the step was cancelled while it waited for the host"))
            }
        }
    }
}

#[async_trait::async_trait]
impl LlmProvider for HostCalls {
    async fn generate(&self, request: Value, cx: &RunContext) -> Result<Value, PluginError> {
        self.call(HostRequest::Generate { request }, cx).await
    }
}

/// `Vectors` needs no `RunContext`; cancellation comes from the run's own token.
pub(crate) struct HostVectors {
    pub(crate) calls: Arc<HostCalls>,
    pub(crate) cx: RunContext,
}

#[async_trait::async_trait]
impl Vectors for HostVectors {
    async fn upsert(
        &self,
        collection: &str,
        model: &EmbeddingModel,
        records: Vec<VectorRecord>,
    ) -> Result<(), PluginError> {
        let request = HostRequest::UpsertVectors {
            collection: collection.to_owned(),
            model: model.clone(),
            records,
        };
        self.calls.call(request, &self.cx).await.map(|_| ())
    }

    async fn search(
        &self,
        collection: &str,
        model: &EmbeddingModel,
        query: &[f32],
        k: usize,
        mode: SearchMode,
    ) -> Result<SearchResult, PluginError> {
        let request = HostRequest::SearchVectors {
            collection: collection.to_owned(),
            model: model.clone(),
            query: query.to_vec(),
            k,
            mode,
        };
        let v = self.calls.call(request, &self.cx).await?;
        serde_json::from_value(v).map_err(|e| {
            PluginError::new(
                "protocol",
                format!("the host's search result is malformed: {e}"),
            )
        })
    }
}

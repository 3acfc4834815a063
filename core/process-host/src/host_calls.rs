//! The host side of host calls: a plugin process asks, on behalf of one of its runs, for
//! what the host keeps (text generation, embedding collections); answered from that run's
//! `RunContext`, so a process gets exactly what an in-process plugin of the step would.

use mediaflow_plugin_api::{PluginError, RunContext, Value};
use mediaflow_protocol::HostRequest;

fn not_offered(what: &str) -> PluginError {
    PluginError::new(
        "not_offered",
        format!("this mediaflow offers no {what} to plugins"),
    )
    .with_help("run the workflow with `mediaflow run`, which offers it")
}

/// Answers one request with `cx`, the run's context.
pub(crate) async fn answer(request: HostRequest, cx: &RunContext) -> Result<Value, PluginError> {
    match request {
        HostRequest::Generate { request } => {
            let llm = cx.llm().ok_or_else(|| not_offered("text generation"))?;
            llm.generate(request, cx).await
        }
        HostRequest::UpsertVectors {
            collection,
            model,
            records,
        } => {
            let v = cx.vectors().ok_or_else(|| not_offered("embedding store"))?;
            v.upsert(&collection, &model, records).await?;
            Ok(Value::Null)
        }
        HostRequest::SearchVectors {
            collection,
            model,
            query,
            k,
            mode,
        } => {
            let v = cx.vectors().ok_or_else(|| not_offered("embedding store"))?;
            let found = v.search(&collection, &model, &query, k, mode).await?;
            serde_json::to_value(found)
                .map_err(|e| PluginError::new("encode", format!("search result: {e}")))
        }
    }
}

//! `/health`, `/api/v1/plugins`, `/api/v1/artifacts/{sha256}` and `/api/v1/openapi.json`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mediaflow_plugin_api::ArtifactRef;
use serde_json::{json, Value};

use crate::problem::{ApiError, ErrorBody};
use crate::Service;

#[utoipa::path(
    get, path = "/health", tag = "service",
    security(()),
    responses(
        (status = 200, description = "The store answers; the plugin processes as their supervisors see them", body = Object),
        (status = 503, description = "The store does not answer", body = Object),
    )
)]
pub async fn health(State(service): State<Service>) -> (StatusCode, Json<Value>) {
    let store = match service.store().ping().await {
        Ok(()) => {
            json!({"ok": true, "backend": format!("{:?}", service.store().backend()).to_lowercase()})
        }
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    };
    let ok = store["ok"] == Value::Bool(true);
    let body = json!({
        "status": if ok { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "store": store,
        "plugins": (service.config().plugin_health)(),
        "runs_in_progress": service.live().count(),
    });
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

#[utoipa::path(
    get, path = "/plugins", tag = "catalog",
    responses((status = 200, description = "Every plugin, as `mediaflow plugins --json` lists them, with its config schema", body = Vec<Object>), (status = 401, description = "No valid token", body = ErrorBody))
)]
pub async fn list_plugins(State(service): State<Service>) -> Json<Vec<Value>> {
    let registry = &service.config().registry;
    Json(
        registry
            .descriptors()
            .map(|d| registry.descriptor_json(d))
            .collect(),
    )
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[utoipa::path(
    get, path = "/artifacts/{sha256}", tag = "catalog",
    params(("sha256" = String, Path, description = "The artifact's sha256, lowercase hex")),
    responses(
        (status = 200, description = "The file, with its media type", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "Bad request", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody),
    )
)]
pub async fn artifact(
    State(service): State<Service>,
    Path(sha256): Path<String>,
) -> Result<Response, ApiError> {
    if !is_sha256(&sha256) {
        return Err(ApiError::bad_request(format!(
            "`{sha256}` is not a sha256: 64 lowercase hex digits"
        )));
    }
    let media_type = service
        .store()
        .artifact_entry(&sha256)
        .await?
        .map(|(_, t)| t)
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let path = service
        .artifacts()
        .locate(&ArtifactRef {
            sha256: sha256.clone(),
            media_type: media_type.clone(),
            size: 0,
            name: None,
        })
        .await?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| ApiError::not_found(format!("no artifact with sha256 {sha256}")))?;
    let len = file.metadata().await.map(|m| m.len()).ok();
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&media_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{sha256}\"")) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    // Artifacts are whatever steps wrote: never let one run as a page of this origin.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(resp)
}

#[utoipa::path(
    get, path = "/openapi.json", tag = "service",
    responses((status = 200, description = "This API's OpenAPI 3 document, generated from the code", body = Object), (status = 401, description = "No valid token", body = ErrorBody))
)]
pub async fn openapi_json(State(service): State<Service>) -> Json<utoipa::openapi::OpenApi> {
    Json(service.0.openapi.clone())
}

//! Errors as the API returns them: a status and `{"error": {code, message, help?, ...}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mediaflow_engine::EngineError;
use mediaflow_store::StoreError;
use mediaflow_workflow::Diagnostics;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code: `unauthorized`, `forbidden`, `not_found`,
    /// `invalid_workflow`, `bad_request`, `conflict`, `store`, `internal`.
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// For `invalid_workflow`: every problem, as `mediaflow validate` prints them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<DiagnosticJson>,
}

/// One problem in a workflow that does not compile.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DiagnosticJson {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: ErrorDetail {
                    code: code.to_owned(),
                    message: message.into(),
                    help: None,
                    diagnostics: Vec::new(),
                },
            },
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.body.error.help = Some(help.into());
        self
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 422 with every problem of a workflow that does not compile.
    pub fn invalid_workflow(d: &Diagnostics) -> Self {
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_workflow",
            d.short(),
        );
        e.body.error.diagnostics = d
            .problems
            .iter()
            .map(|p| DiagnosticJson {
                file: d.file.clone(),
                line: p.line,
                column: p.column,
                code: p.code.to_owned(),
                message: p.message.clone(),
                step: p.step.clone(),
                label: p.label.clone(),
                help: p.help.clone(),
            })
            .collect();
        e
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(&self.body).unwrap_or_else(|_| json!({}))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.body.error.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::RunNotFound(_) | StoreError::ArtifactNotFound(_) => {
                Self::not_found(e.to_string())
            }
            other => Self::new(StatusCode::SERVICE_UNAVAILABLE, "store", other.to_string()),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Store(s) => s.into(),
            EngineError::Inputs(i) => Self::bad_request(i.to_string()),
            EngineError::NoSuchStep { .. } => Self::bad_request(e.to_string()),
            EngineError::RunInProgress { .. } | EngineError::ClaimLost { .. } => {
                Self::conflict(e.to_string())
            }
            other => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                other.to_string(),
            ),
        }
    }
}

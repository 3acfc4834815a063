//! `http.request`: one HTTP request from a workflow, under the host policy.

use std::collections::BTreeMap;
use std::time::Duration;

use mediaflow_plugin_api::{
    ArtifactRef, ConfigIssue, Descriptor, JsonSchema, PluginError, RunContext, TypedPlugin,
};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::fetch::{fetch, Body, Limits, Request, Response};
use crate::guard::HostPolicy;
use crate::{parse_url, timeout_of};

/// Default `max_bytes`: 10 MiB.
const MAX_BYTES: u64 = 10 << 20;

/// The HTTP method.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
}

impl From<HttpMethod> for Method {
    fn from(m: HttpMethod) -> Method {
        match m {
            HttpMethod::Get => Method::GET,
            HttpMethod::Post => Method::POST,
            HttpMethod::Put => Method::PUT,
            HttpMethod::Patch => Method::PATCH,
            HttpMethod::Delete => Method::DELETE,
            HttpMethod::Head => Method::HEAD,
        }
    }
}

/// How the response comes back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResponseAs {
    /// JSON as `json` when the server says it is JSON; other text as `text`; anything else
    /// (images, audio, PDFs) as a `file` artifact.
    #[default]
    Auto,
    Text,
    Json,
    /// The body as a `file` artifact, untouched.
    Artifact,
}

/// Settings of `http.request`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestConfig {
    /// An http or https URL.
    pub url: String,
    /// GET (default), POST, PUT, PATCH, DELETE or HEAD.
    #[serde(default)]
    pub method: HttpMethod,
    /// Query parameters added to the URL.
    #[serde(default)]
    pub query: BTreeMap<String, Value>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body.
    #[serde(default)]
    pub json: Option<Value>,
    /// A form body (`application/x-www-form-urlencoded`).
    #[serde(default)]
    pub form: Option<BTreeMap<String, Value>>,
    /// A text body.
    #[serde(default)]
    pub body: Option<String>,
    /// For the whole exchange, redirects included: seconds or `30s`, `2m` (default 30 s).
    #[serde(default)]
    pub timeout: Option<Value>,
    /// A larger response fails the step (default 10 MiB).
    #[serde(default = "max_bytes")]
    #[schemars(range(min = 1))]
    pub max_bytes: u64,
    /// The hosts this step may reach (`api.example.com`, `*.example.com`, `10.0.0.5`).
    /// Listed hosts may be private addresses; with a list, no other host is reached.
    /// Without one, any public host, and never a loopback, private or link-local address.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// `auto` (default), `text`, `json` or `artifact`.
    #[serde(default)]
    pub response: ResponseAs,
    /// Fail the step on a 4xx or 5xx status (default true; 5xx and 429 may be retried).
    #[serde(default = "yes")]
    pub fail_on_status: bool,
    /// Redirects followed (each checked like the first URL).
    #[serde(default = "five")]
    #[schemars(range(max = 20))]
    pub max_redirects: usize,
}

fn max_bytes() -> u64 {
    MAX_BYTES
}

fn yes() -> bool {
    true
}

fn five() -> usize {
    5
}

/// The outputs of `http.request`.
#[derive(Serialize, JsonSchema)]
pub struct RequestOutput {
    pub status: u16,
    /// The URL answered, after redirects.
    pub url: String,
    /// Response headers (lower-case names; repeated ones joined with `, `).
    pub headers: BTreeMap<String, String>,
    /// The media type (`application/json`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<ArtifactRef>,
    /// Body bytes received.
    pub bytes: u64,
}

/// `http.request`: calls an HTTP API or fetches a page, safely.
pub struct HttpRequest(Descriptor);

impl HttpRequest {
    pub fn new() -> Self {
        HttpRequest(
            Descriptor::from_config::<RequestConfig>(
                "http.request",
                "1.0.0",
                "Send an HTTP request (JSON, form or text body; size limit; private addresses refused unless allowed)",
            )
            .inputs(["url", "json", "form", "body", "query", "headers"])
            .outputs_from::<RequestOutput>()
            .not_cacheable(),
        )
    }
}

impl Default for HttpRequest {
    fn default() -> Self {
        Self::new()
    }
}

/// A query or form value as text (strings as they are, other JSON as JSON).
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

fn is_json(media_type: Option<&str>) -> bool {
    media_type.is_some_and(|m| m == "application/json" || m.ends_with("+json"))
}

fn is_text(media_type: Option<&str>) -> bool {
    media_type.is_some_and(|m| {
        m.starts_with("text/")
            || m.ends_with("+xml")
            || m == "application/xml"
            || m == "application/javascript"
            || m == "application/x-www-form-urlencoded"
    })
}

/// The headers as one map (names lower case, repeats joined).
fn header_map(r: &Response) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in &r.headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        out.entry(k.as_str().to_owned())
            .and_modify(|e| {
                e.push_str(", ");
                e.push_str(&v);
            })
            .or_insert(v);
    }
    out
}

#[async_trait::async_trait]
impl TypedPlugin for HttpRequest {
    type Config = RequestConfig;
    type Output = RequestOutput;

    fn descriptor(&self) -> &Descriptor {
        &self.0
    }

    fn check(&self, c: &RequestConfig) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let bodies = [c.json.is_some(), c.form.is_some(), c.body.is_some()];
        if bodies.iter().filter(|b| **b).count() > 1 {
            issues.push(
                ConfigIssue::new("", "give at most one of `json:`, `form:` and `body:`")
                    .with_help("a request has one body"),
            );
        }
        if bodies.iter().any(|b| *b) && matches!(c.method, HttpMethod::Get | HttpMethod::Head) {
            issues.push(
                ConfigIssue::new("/method", "a GET or HEAD request has no body")
                    .with_help("use `method: POST` (or PUT, PATCH) to send one"),
            );
        }
        issues
    }

    async fn run(&self, c: RequestConfig, cx: &RunContext) -> Result<RequestOutput, PluginError> {
        let (mut url, basic_auth) = parse_url(&c.url)?;
        if !c.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &c.query {
                pairs.append_pair(k, &as_text(v));
            }
        }
        let body = match (&c.json, &c.form, &c.body) {
            (Some(j), _, _) => Body::Json(j.clone()),
            (_, Some(f), _) => Body::Form(f.iter().map(|(k, v)| (k.clone(), as_text(v))).collect()),
            (_, _, Some(b)) => Body::Text(b.clone()),
            _ => Body::None,
        };
        let request = Request {
            method: c.method.into(),
            url,
            headers: c.headers.clone().into_iter().collect(),
            body,
            basic_auth,
        };
        let limits = Limits {
            timeout: timeout_of(c.timeout.as_ref(), Duration::from_secs(30))?,
            max_bytes: c.max_bytes,
            max_redirects: c.max_redirects,
        };
        let policy = HostPolicy::new(&c.allow_hosts);
        let response = tokio::select! {
            r = fetch(request, &policy, limits) => r?,
            () = cx.cancelled() => return Err(PluginError::new("cancelled", "the step was cancelled")),
        };
        let status = response.status;
        if c.fail_on_status && (status.is_client_error() || status.is_server_error()) {
            let snippet: String = String::from_utf8_lossy(&response.body)
                .chars()
                .take(300)
                .collect();
            let err = PluginError::new(
                "http_status",
                format!("{} answered {status}: {}", response.url, snippet.trim()),
            )
            .with_help("set `fail_on_status: false` to get the response as the step's output");
            return Err(
                if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                    err.retryable()
                } else {
                    err
                },
            );
        }
        let media_type = response.media_type();
        let mut out = RequestOutput {
            status: status.as_u16(),
            url: response.url.to_string(),
            headers: header_map(&response),
            media_type: media_type.clone(),
            text: None,
            json: None,
            file: None,
            bytes: response.body.len() as u64,
        };
        let mt = media_type.as_deref();
        let mode = match c.response {
            ResponseAs::Auto if response.body.is_empty() => ResponseAs::Text,
            ResponseAs::Auto if is_json(mt) => ResponseAs::Json,
            ResponseAs::Auto if is_text(mt) || std::str::from_utf8(&response.body).is_ok() => {
                ResponseAs::Text
            }
            ResponseAs::Auto => ResponseAs::Artifact,
            m => m,
        };
        match mode {
            ResponseAs::Json => {
                let v = serde_json::from_slice(&response.body).map_err(|e| {
                    PluginError::new(
                        "bad_response",
                        format!("{} did not answer JSON: {e}", response.url),
                    )
                })?;
                out.json = Some(v);
            }
            ResponseAs::Text | ResponseAs::Auto => {
                let text = String::from_utf8(response.body).map_err(|_| {
                    PluginError::new(
                        "bad_response",
                        format!("{} answered bytes that are not UTF-8 text", out.url),
                    )
                    .with_help("use `response: artifact` to keep the bytes as a file")
                })?;
                out.text = Some(text);
            }
            ResponseAs::Artifact => {
                let name = response
                    .url
                    .path_segments()
                    .and_then(|mut s| s.next_back())
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned);
                let file = cx
                    .artifacts()
                    .put_bytes(
                        &response.body,
                        mt.unwrap_or("application/octet-stream"),
                        name.as_deref(),
                    )
                    .await?;
                out.file = Some(file);
            }
        }
        Ok(out)
    }
}

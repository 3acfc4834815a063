//! One HTTP exchange under a [`HostPolicy`]: every hop's host resolved and checked, the
//! connection pinned to the checked addresses, redirects followed by hand (and checked
//! again), a total deadline, and the body read up to a size limit.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use crate::guard::HostPolicy;
use crate::{Credentials, FetchError};

/// What a request sends.
#[derive(Clone, Debug, Default)]
pub enum Body {
    #[default]
    None,
    Json(Value),
    Form(Vec<(String, String)>),
    Text(String),
}

/// One request.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// Basic authentication for the URL's own origin (from a `user:password@` URL).
    pub basic_auth: Option<Credentials>,
}

/// Headers that still go with a request redirected to another origin: nothing that could
/// carry a credential (`authorization`, `cookie`, an API key in `x-api-key`, …).
const CROSS_ORIGIN_HEADERS: [&str; 5] = [
    "accept",
    "accept-language",
    "content-language",
    "content-type",
    "user-agent",
];

/// How long and how much.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// For the whole exchange, redirects included.
    pub timeout: Duration,
    /// Most body bytes read; a larger response is an error.
    pub max_bytes: u64,
    pub max_redirects: usize,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    /// Where it came from, after redirects.
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    /// The media type without parameters, lower case (`application/json`).
    pub fn media_type(&self) -> Option<String> {
        let v = self.headers.get(CONTENT_TYPE)?.to_str().ok()?;
        Some(v.split(';').next()?.trim().to_ascii_lowercase())
    }
}

/// Sends `request`, following redirects, under `policy` and `limits`.
pub async fn fetch(
    request: Request,
    policy: &HostPolicy,
    limits: Limits,
) -> Result<Response, FetchError> {
    // The hop in progress, to name the URL that did not answer in time.
    let mut at = request.url.to_string();
    let result =
        tokio::time::timeout(limits.timeout, exchange(request, policy, limits, &mut at)).await;
    result.unwrap_or_else(|_| {
        Err(FetchError::Timeout {
            url: at,
            after: limits.timeout,
        })
    })
}

async fn exchange(
    mut request: Request,
    policy: &HostPolicy,
    limits: Limits,
    at: &mut String,
) -> Result<Response, FetchError> {
    let mut hops = 0;
    loop {
        *at = request.url.to_string();
        let response = send(&request, policy).await?;
        let status = response.status();
        if !status.is_redirection() || status == StatusCode::NOT_MODIFIED {
            return read(response, request.url, limits.max_bytes).await;
        }
        let Some(location) = response.headers().get(LOCATION) else {
            return read(response, request.url, limits.max_bytes).await;
        };
        hops += 1;
        if hops > limits.max_redirects {
            return Err(FetchError::TooManyRedirects {
                url: request.url.to_string(),
                max: limits.max_redirects,
            });
        }
        let mut next = location
            .to_str()
            .ok()
            .and_then(|l| request.url.join(l).ok())
            .ok_or_else(|| FetchError::BadRedirect {
                url: request.url.to_string(),
                location: String::from_utf8_lossy(location.as_bytes()).into_owned(),
            })?;
        // Credentials a server writes into its Location are not used (nor shown).
        let _ = next.set_username("");
        let _ = next.set_password(None);
        if request.url.scheme() == "https" && next.scheme() == "http" {
            return Err(FetchError::Downgrade {
                url: request.url.to_string(),
                location: next.to_string(),
            });
        }
        // 303, and 301/302 after a POST, continue as a GET without the body (as browsers
        // do); 307 and 308 repeat the request.
        let same_request = matches!(
            status,
            StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
        );
        if !same_request && request.method != Method::HEAD {
            request.method = Method::GET;
            request.body = Body::None;
        }
        // Credentials are not handed to another origin (scheme, host and port).
        if next.origin() != request.url.origin() {
            request.basic_auth = None;
            request.headers.retain(|(k, _)| {
                CROSS_ORIGIN_HEADERS
                    .iter()
                    .any(|safe| k.eq_ignore_ascii_case(safe))
            });
        }
        request.url = next;
    }
}

/// One hop: resolve and check the host, then connect only to the checked addresses.
async fn send(request: &Request, policy: &HostPolicy) -> Result<reqwest::Response, FetchError> {
    let addrs = policy.resolve(&request.url).await?;
    let host = request.url.host_str().unwrap_or_default().to_owned();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .resolve_to_addrs(&host, &addrs)
        .user_agent(concat!("mediaflow/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|source| FetchError::Http {
            url: request.url.to_string(),
            source,
        })?;
    let mut headers = HeaderMap::new();
    for (k, v) in &request.headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| FetchError::Header { name: k.clone() })?;
        let value = HeaderValue::from_str(v).map_err(|_| FetchError::Header { name: k.clone() })?;
        headers.append(name, value);
    }
    let mut builder = client
        .request(request.method.clone(), request.url.clone())
        .headers(headers);
    if let Some((user, password)) = &request.basic_auth {
        builder = builder.basic_auth(user, password.as_ref());
    }
    builder = match &request.body {
        Body::None => builder,
        Body::Json(v) => builder.json(v),
        Body::Form(pairs) => builder.form(pairs),
        Body::Text(t) => builder.body(t.clone()),
    };
    builder.send().await.map_err(|source| FetchError::Http {
        url: request.url.to_string(),
        source,
    })
}

/// Reads the body, refusing more than `max` bytes (by its declared length, or as it comes).
async fn read(mut response: reqwest::Response, url: Url, max: u64) -> Result<Response, FetchError> {
    let too_large = || FetchError::TooLarge {
        url: url.to_string(),
        limit: max,
    };
    if response.content_length().is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|source| FetchError::Http {
        url: url.to_string(),
        source,
    })? {
        if body.len() as u64 + chunk.len() as u64 > max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status: response.status(),
        headers: response.headers().clone(),
        url,
        body,
    })
}

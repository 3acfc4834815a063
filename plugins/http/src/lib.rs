//! Newsroom inputs from the web: `http.request` (GET/POST/… with JSON, form or text bodies,
//! headers, a deadline and a response size limit) and `feed.read` (RSS and Atom from a URL
//! or a file, with `since:` and `dedupe:` across runs). Both run in the engine's process.
//!
//! Every fetch goes through [`guard::HostPolicy`]: only public addresses unless the host is
//! in the step's `allow_hosts:`, the connection pinned to the addresses that were checked,
//! and each redirect checked again.

use std::sync::Arc;
use std::time::Duration;

use mediaflow_plugin_api::{typed, Plugin, PluginError};

pub mod feed;
pub mod fetch;
pub mod guard;
pub mod request;

pub use feed::FeedRead;
pub use request::HttpRequest;

/// The plugins of this crate.
pub fn plugins() -> Vec<Arc<dyn Plugin>> {
    vec![typed(HttpRequest::new()), typed(FeedRead::new())]
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("`{0}`: only http and https URLs can be fetched")]
    Scheme(String),
    #[error("`{0}` has no host")]
    NoHost(String),
    #[error("`{0}` is not a URL: {1}")]
    Url(String, String),
    #[error("host `{host}` is not in allow_hosts ({allowed})")]
    NotAllowed { host: String, allowed: String },
    #[error(
        "`{host}` is {addr}, a loopback, private, link-local or reserved address: refused \
         (list the host in `allow_hosts:` to reach it)"
    )]
    Private {
        host: String,
        addr: std::net::IpAddr,
    },
    #[error("cannot resolve `{host}`: {source}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("request to {url} failed: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("header `{name}` is not a valid HTTP header")]
    Header { name: String },
    #[error("{url} did not answer within {}", mediaflow_plugin_api::format_duration(*after))]
    Timeout { url: String, after: Duration },
    #[error("{url}: the response is larger than max_bytes ({limit} bytes)")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: more than {max} redirects")]
    TooManyRedirects { url: String, max: usize },
    #[error("{url} redirects to `{location}`, which is not a URL")]
    BadRedirect { url: String, location: String },
}

impl From<FetchError> for PluginError {
    fn from(e: FetchError) -> PluginError {
        let code = match &e {
            FetchError::Scheme(_) | FetchError::NoHost(_) | FetchError::Url(..) => "bad_url",
            FetchError::NotAllowed { .. } | FetchError::Private { .. } => "host_refused",
            FetchError::Resolve { .. } | FetchError::Http { .. } => "http",
            FetchError::Header { .. } => "bad_header",
            FetchError::Timeout { .. } => "timeout",
            FetchError::TooLarge { .. } => "too_large",
            FetchError::TooManyRedirects { .. } | FetchError::BadRedirect { .. } => "redirect",
        };
        // A name that did not resolve, a refused connection or a slow server may do better
        // next time; a refused host or an oversized answer will not.
        let retryable = matches!(
            e,
            FetchError::Resolve { .. } | FetchError::Http { .. } | FetchError::Timeout { .. }
        );
        let err = PluginError::new(code, e.to_string());
        if retryable {
            err.retryable()
        } else {
            err
        }
    }
}

/// A step's `timeout:` for its fetch: seconds or a duration (`30s`, `2m`).
fn timeout_of(v: Option<&serde_json::Value>, default: Duration) -> Result<Duration, PluginError> {
    match v {
        None => Ok(default),
        Some(v) => mediaflow_plugin_api::duration_from_value(v)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                PluginError::new(
                    "bad_config",
                    format!("timeout {v} is not a duration (seconds, or such as `30s`, `2m`)"),
                )
            }),
    }
}

/// Parses `url` as an absolute URL.
fn parse_url(url: &str) -> Result<reqwest::Url, FetchError> {
    reqwest::Url::parse(url.trim()).map_err(|e| FetchError::Url(url.to_owned(), e.to_string()))
}

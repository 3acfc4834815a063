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
    #[error("{url}: host `{host}` is not in allow_hosts ({allowed})")]
    NotAllowed {
        url: String,
        host: String,
        allowed: String,
    },
    #[error(
        "{url}: `{host}` is {addr}, a loopback, private, link-local or reserved address: \
         refused (list the host in `allow_hosts:` to reach it)"
    )]
    Private {
        url: String,
        host: String,
        addr: std::net::IpAddr,
    },
    #[error("{url}: cannot resolve `{host}`: {source}")]
    Resolve {
        url: String,
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
    #[error("{url} redirects to {location}: from https to plain http is refused")]
    Downgrade { url: String, location: String },
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
            FetchError::TooManyRedirects { .. }
            | FetchError::BadRedirect { .. }
            | FetchError::Downgrade { .. } => "redirect",
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

/// A user name and password for HTTP basic authentication.
pub type Credentials = (String, Option<String>);

/// Parses `url` as an absolute URL. A `user:password@` part is taken out of it and returned
/// apart, to be sent as basic authentication to that origin only: the URL that errors,
/// outputs, logs and the dedupe key show never carries a password.
fn parse_url(url: &str) -> Result<(reqwest::Url, Option<Credentials>), FetchError> {
    let mut parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| FetchError::Url(hide_userinfo(url.trim()), e.to_string()))?;
    let user = decode(parsed.username());
    let password = parsed.password().map(decode);
    let credentials = (!user.is_empty() || password.is_some()).then_some((user, password));
    if credentials.is_some() {
        // Only URLs that cannot have credentials (no host) refuse these, and they have
        // none to take out.
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
    }
    Ok((parsed, credentials))
}

/// `url` (one that did not parse) with everything between `://` and the last `@` before
/// the path replaced by `***`: whatever its shape, a password written there is not shown.
fn hide_userinfo(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return mediaflow_store::redact_url(url);
    };
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]),
        None => url.to_owned(),
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url() {
        let (url, creds) = parse_url("https://ann:s%40cret@news.example.com/feed").unwrap();
        assert_eq!(url.as_str(), "https://news.example.com/feed");
        assert_eq!(creds, Some(("ann".into(), Some("s@cret".into()))));
        let (url, creds) = parse_url("https://news.example.com/feed").unwrap();
        assert_eq!(url.as_str(), "https://news.example.com/feed");
        assert_eq!(creds, None);
        for bad in [
            "https://ann:secret@example.com:99999/",
            "https://ann:secret@exa mple.com/",
        ] {
            let err = parse_url(bad).unwrap_err();
            assert!(!err.to_string().contains("secret"), "{err}");
        }
    }
}

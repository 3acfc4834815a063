//! `feed.read`: RSS (0.9x, 1.0, 2.0), Atom and JSON Feed from a URL or a file, through
//! `feed-rs`. `since:` keeps entries published after a time; `dedupe: true` returns each
//! entry once across runs, remembering the ids it returned in the run database.

use std::time::Duration;

use chrono::{DateTime, Utc};
use mediaflow_plugin_api::{
    ConfigIssue, Descriptor, JsonSchema, PluginError, RunContext, TypedPlugin,
};
use mediaflow_store::Store;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::fetch::{fetch, Body, Limits, Request};
use crate::guard::HostPolicy;
use crate::{parse_url, timeout_of};

/// Default `max_bytes` of a feed: 20 MiB.
const MAX_BYTES: u64 = 20 << 20;

/// Settings of `feed.read`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// The feed's http or https URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Or a feed file.
    #[serde(default)]
    pub path: Option<String>,
    /// Only read files below this directory (inside MEDIAFLOW_FILES_ROOT, if that is set).
    #[serde(default)]
    pub root: Option<String>,
    /// Only entries published (or, without a publication time, updated) at or after this:
    /// an RFC 3339 time, a date (`2026-12-01`), or an age (`24h`, `7days`). Entries with
    /// neither time are kept.
    #[serde(default)]
    pub since: Option<String>,
    /// Return each entry once across runs: the ids returned are remembered in the run
    /// database, by `dedupe_key` (default: the URL or path).
    #[serde(default)]
    pub dedupe: bool,
    /// What the remembered ids are filed under, to share them between feeds or steps.
    #[serde(default)]
    pub dedupe_key: Option<String>,
    /// At most this many entries, in the feed's order.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub limit: Option<usize>,
    /// The hosts this step may reach (see `http.request`).
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// Seconds or `30s`, `2m` (default 30 s).
    #[serde(default)]
    pub timeout: Option<Value>,
    /// A larger feed fails the step (default 20 MiB).
    #[serde(default = "max_bytes")]
    #[schemars(range(min = 1))]
    pub max_bytes: u64,
}

fn max_bytes() -> u64 {
    MAX_BYTES
}

/// The feed itself.
#[derive(Serialize, JsonSchema)]
pub struct FeedInfo {
    /// `rss2`, `atom`, `rss1`, `rss0` or `json`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// One entry.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct FeedItem {
    /// The entry's GUID or Atom id (or, without one, an id made from its link and title).
    pub id: String,
    pub title: Option<String>,
    pub link: Option<String>,
    pub summary: Option<String>,
    /// The full content, when the feed carries it (`content:encoded`, Atom `content`).
    pub content: Option<String>,
    pub authors: Vec<String>,
    /// RFC 3339.
    pub published: Option<String>,
    pub updated: Option<String>,
    pub categories: Vec<String>,
}

/// The outputs of `feed.read`.
#[derive(Serialize, JsonSchema)]
pub struct FeedOutput {
    pub feed: FeedInfo,
    /// The entries, in the feed's order.
    pub items: Vec<FeedItem>,
    pub count: usize,
    /// Entries left out because an earlier run returned them (`dedupe: true`).
    pub already_seen: usize,
    /// Entries left out as older than `since`.
    pub older: usize,
}

/// `feed.read`: reads an RSS or Atom feed.
pub struct FeedRead(Descriptor);

impl FeedRead {
    pub fn new() -> Self {
        FeedRead(
            Descriptor::from_config::<FeedConfig>(
                "feed.read",
                "1.0.0",
                "Read an RSS or Atom feed from a URL or a file; only new entries with `dedupe: true`",
            )
            .inputs(["url", "path", "since"])
            .outputs_from::<FeedOutput>()
            .not_cacheable(),
        )
    }
}

impl Default for FeedRead {
    fn default() -> Self {
        Self::new()
    }
}

/// Entries not in the feed for this long are forgotten by `dedupe:` (its table stays small).
const FORGET_AFTER: Duration = Duration::from_secs(180 * 86_400);

/// Reads a feed file of at most `max` bytes.
async fn read_file(file: &std::path::Path, max: u64) -> Result<Vec<u8>, PluginError> {
    use tokio::io::AsyncReadExt;
    let io =
        |e: std::io::Error| PluginError::new("io", format!("cannot read {}: {e}", file.display()));
    let meta = tokio::fs::metadata(file).await.map_err(io)?;
    if !meta.is_file() {
        return Err(PluginError::new(
            "io",
            format!("{} is not a file", file.display()),
        ));
    }
    // Read through a limit, not by the size seen a moment ago: the file may grow (or be a
    // device that never ends).
    let mut bytes = Vec::new();
    tokio::fs::File::open(file)
        .await
        .map_err(io)?
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .await
        .map_err(io)?;
    if bytes.len() as u64 > max {
        return Err(PluginError::new(
            "too_large",
            format!("{} is more than max_bytes ({max} bytes)", file.display()),
        ));
    }
    Ok(bytes)
}

/// The entries at or after `since` (by publication, else update time), each id once, in
/// the feed's order; and how many were older.
fn select(
    entries: Vec<feed_rs::model::Entry>,
    since: Option<DateTime<Utc>>,
) -> (Vec<FeedItem>, usize) {
    let mut older = 0;
    let mut ids = std::collections::HashSet::new();
    let mut items = Vec::new();
    for e in entries {
        let when = e.published.or(e.updated);
        if let (Some(since), Some(when)) = (since, when) {
            if when < since {
                older += 1;
                continue;
            }
        }
        // A feed that repeats an entry gives it once.
        if ids.insert(e.id.clone()) {
            items.push(item(e));
        }
    }
    (items, older)
}

/// `since:` as a time: RFC 3339, a date, or an age before `now`.
pub fn parse_since(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let t = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(t) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(t.and_utc());
        }
    }
    if let Some(age) = mediaflow_plugin_api::parse_duration(t) {
        if let Some(t) = chrono::Duration::from_std(age)
            .ok()
            .and_then(|age| now.checked_sub_signed(age))
        {
            return Ok(t);
        }
    }
    Err(format!(
        "since `{t}` is not a time (RFC 3339, YYYY-MM-DD) or an age (`24h`, `7days`)"
    ))
}

fn text(t: Option<feed_rs::model::Text>) -> Option<String> {
    t.map(|t| t.content.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The entry's own link: `alternate` (or unnamed) first.
fn link(links: &[feed_rs::model::Link]) -> Option<String> {
    links
        .iter()
        .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .or(links.first())
        .map(|l| l.href.clone())
}

fn item(e: feed_rs::model::Entry) -> FeedItem {
    FeedItem {
        id: e.id,
        title: text(e.title),
        link: link(&e.links),
        summary: text(e.summary),
        content: e
            .content
            .and_then(|c| c.body)
            .map(|b| b.trim().to_owned())
            .filter(|b| !b.is_empty()),
        authors: e
            .authors
            .into_iter()
            .map(|p| p.name)
            .filter(|n| !n.is_empty())
            .collect(),
        published: e.published.map(|t| t.to_rfc3339()),
        updated: e.updated.map(|t| t.to_rfc3339()),
        categories: e
            .categories
            .into_iter()
            .map(|c| c.label.unwrap_or(c.term))
            .collect(),
    }
}

/// Parses a feed document; `source` names it in the error.
pub fn parse(
    bytes: &[u8],
    source: &str,
) -> Result<(FeedInfo, Vec<feed_rs::model::Entry>), PluginError> {
    let feed = feed_rs::parser::parse(bytes).map_err(|e| {
        PluginError::new(
            "bad_feed",
            format!("{source} is not an RSS or Atom feed that can be read: {e}"),
        )
    })?;
    let kind = match feed.feed_type {
        feed_rs::model::FeedType::Atom => "atom",
        feed_rs::model::FeedType::JSON => "json",
        feed_rs::model::FeedType::RSS0 => "rss0",
        feed_rs::model::FeedType::RSS1 => "rss1",
        feed_rs::model::FeedType::RSS2 => "rss2",
    };
    let info = FeedInfo {
        kind: kind.to_owned(),
        title: text(feed.title),
        link: link(&feed.links),
    };
    Ok((info, feed.entries))
}

#[async_trait::async_trait]
impl TypedPlugin for FeedRead {
    type Config = FeedConfig;
    type Output = FeedOutput;

    fn descriptor(&self) -> &Descriptor {
        &self.0
    }

    fn check(&self, c: &FeedConfig) -> Vec<ConfigIssue> {
        match (&c.url, &c.path) {
            (Some(_), Some(_)) => vec![ConfigIssue::new("", "give `url:` or `path:`, not both")],
            (None, None) => vec![ConfigIssue::new("", "give the feed's `url:` or `path:`")],
            _ => Vec::new(),
        }
    }

    async fn run(&self, c: FeedConfig, cx: &RunContext) -> Result<FeedOutput, PluginError> {
        let now = Utc::now();
        let since = c
            .since
            .as_deref()
            .map(|s| parse_since(s, now))
            .transpose()
            .map_err(|m| PluginError::new("bad_config", m))?;
        let store = if c.dedupe {
            Some(cx.extension::<Store>().cloned().ok_or_else(|| {
                PluginError::new(
                    "no_database",
                    "`dedupe: true` needs the run database, which only mediaflow's engine gives",
                )
            })?)
        } else {
            None
        };
        let (source, bytes) = match (&c.url, &c.path) {
            (Some(written), _) => {
                let (url, basic_auth) = parse_url(written)?;
                // Shown and used as the dedupe key as written, unless it had credentials:
                // then without them.
                let shown = match basic_auth {
                    Some(_) => url.to_string(),
                    None => written.trim().to_owned(),
                };
                let request = Request {
                    method: Method::GET,
                    url,
                    basic_auth,
                    headers: vec![(
                        "accept".into(),
                        "application/rss+xml, application/atom+xml, application/feed+json, \
                         application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
                            .into(),
                    )],
                    body: Body::None,
                };
                let limits = Limits {
                    timeout: timeout_of(c.timeout.as_ref(), Duration::from_secs(30))?,
                    max_bytes: c.max_bytes,
                    max_redirects: 5,
                };
                let policy = HostPolicy::new(&c.allow_hosts);
                let response = tokio::select! {
                    r = fetch(request, &policy, limits) => r?,
                    () = cx.cancelled() => {
                        return Err(PluginError::new("cancelled", "the step was cancelled"))
                    }
                };
                if !response.status.is_success() {
                    let err = PluginError::new(
                        "http_status",
                        format!("{} answered {}", response.url, response.status),
                    );
                    return Err(if response.status.is_server_error() {
                        err.retryable()
                    } else {
                        err
                    });
                }
                (shown, response.body)
            }
            (None, Some(path)) => {
                let file = mediaflow_builtin::confine(path, c.root.as_deref())?;
                (path.clone(), read_file(&file, c.max_bytes).await?)
            }
            (None, None) => {
                return Err(PluginError::new(
                    "bad_config",
                    "give the feed's `url:` or `path:`",
                ))
            }
        };
        let shown = source.clone();
        let (feed, mut items, older) =
            tokio::task::spawn_blocking(move || -> Result<_, PluginError> {
                let (feed, entries) = parse(&bytes, &shown)?;
                let (items, older) = select(entries, since);
                Ok((feed, items, older))
            })
            .await
            .map_err(|e| PluginError::new("panic", format!("reading the feed failed: {e}")))??;
        let mut already_seen = 0;
        if let Some(store) = &store {
            let key = c.dedupe_key.clone().unwrap_or_else(|| source.clone());
            let ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
            // Claimed atomically: of two runs reading the feed at once, each entry goes to
            // one. Entries seen before have their time refreshed, and entries gone from the
            // feed for FORGET_AFTER are forgotten.
            // Entries beyond `limit` are neither returned nor remembered: the next run gets
            // them.
            let claim = store
                .claim_feed_entries(&key, &ids, c.limit.unwrap_or(usize::MAX), FORGET_AFTER)
                .await?;
            items.retain(|i| claim.claimed.contains(&i.id));
            already_seen = claim.seen;
        } else if let Some(limit) = c.limit {
            items.truncate(limit);
        }
        cx.info(&format!(
            "{source}: {} new entries ({already_seen} seen before, {older} older than since)",
            items.len()
        ));
        Ok(FeedOutput {
            feed,
            count: items.len(),
            items,
            already_seen,
            older,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_times_dates_and_ages() {
        let now = DateTime::parse_from_rfc3339("2026-12-05T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |s: &str| parse_since(s, now).unwrap().to_rfc3339();
        assert_eq!(at("2026-12-01T08:00:00+01:00"), "2026-12-01T07:00:00+00:00");
        assert_eq!(at("2026-12-01"), "2026-12-01T00:00:00+00:00");
        assert_eq!(at("24h"), "2026-12-04T12:00:00+00:00");
        assert_eq!(at("7days"), "2026-11-28T12:00:00+00:00");
        assert!(parse_since("last tuesday", now).is_err());
    }
}

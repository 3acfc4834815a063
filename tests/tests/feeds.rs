//! `feed.read` and `http.request` against a real HTTP server on 127.0.0.1 serving RSS and
//! Atom documents written here: entries read with their fields, a malformed feed refused with
//! a clear error while a sibling step goes on, `dedupe: true` across two runs (SQLite and
//! PostgreSQL), loopback refused unless allow-listed, redirects checked again, and the
//! response size limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mediaflow_store::RunStatus;
use mediaflow_tests::{step_error as error, step_outputs as outputs, Db, Harness};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// path → (status, content type, body, extra header)
type Routes = Arc<Mutex<HashMap<String, (u16, String, Vec<u8>, Option<String>)>>>;

/// A small HTTP/1.1 server: one response per connection. `POST /echo` answers the request
/// body back as JSON with its content type.
async fn serve(routes: Routes) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let routes = routes.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut lines = head.lines();
                let first: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
                let (method, path) = (first[0].to_owned(), first[1].to_owned());
                let mut length = 0;
                let mut content_type = String::new();
                for l in lines {
                    let lower = l.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if let Some(v) = lower.strip_prefix("content-type:") {
                        content_type = v.trim().to_owned();
                    }
                }
                let mut body = buf[head_end..].to_vec();
                while body.len() < length {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    body.extend_from_slice(&chunk[..n]);
                }
                let (status, ctype, payload, extra) = if method == "POST" && path == "/echo" {
                    let echoed = json!({
                        "content_type": content_type,
                        "body": String::from_utf8_lossy(&body),
                    });
                    (
                        200,
                        "application/json".to_owned(),
                        echoed.to_string().into_bytes(),
                        None,
                    )
                } else {
                    routes.lock().unwrap().get(&path).cloned().unwrap_or((
                        404,
                        "text/plain".into(),
                        b"not found".to_vec(),
                        None,
                    ))
                };
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n",
                    payload.len()
                );
                if let Some(h) = extra {
                    head.push_str(&h);
                    head.push_str("\r\n");
                }
                head.push_str("\r\n");
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&payload).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    port
}

fn rss(items: &[(&str, &str)]) -> Vec<u8> {
    let entries: String = items
        .iter()
        .map(|(guid, date)| {
            format!(
                r#"<item>
  <title>Story {guid}</title>
  <link>https://news.example.com/{guid}</link>
  <guid isPermaLink="false">{guid}</guid>
  <description>Summary of {guid}.</description>
  <content:encoded><![CDATA[<p>The whole of {guid}.</p>]]></content:encoded>
  <dc:creator>Ann Reporter</dc:creator>
  <category>politics</category>
  <pubDate>{date}</pubDate>
</item>"#
            )
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel>
  <title>The Daily Example</title>
  <link>https://news.example.com/</link>
  <description>News</description>
  {entries}
</channel>
</rss>"#
    )
    .into_bytes()
}

const ATOM: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Wire service</title>
  <link href="https://wire.example.org/"/>
  <updated>2026-12-04T10:00:00Z</updated>
  <id>urn:uuid:feed-1</id>
  <entry>
    <title>Budget passes</title>
    <link rel="alternate" href="https://wire.example.org/budget"/>
    <id>urn:uuid:entry-budget</id>
    <published>2026-12-04T09:00:00Z</published>
    <updated>2026-12-04T09:30:00Z</updated>
    <author><name>Bob Wire</name></author>
    <summary>The budget passed.</summary>
    <content type="html">&lt;p&gt;The budget passed by 12 votes.&lt;/p&gt;</content>
    <category term="economy"/>
  </entry>
  <entry>
    <title>Old news</title>
    <link href="https://wire.example.org/old"/>
    <id>urn:uuid:entry-old</id>
    <updated>2020-01-01T00:00:00Z</updated>
    <summary>Long ago.</summary>
  </entry>
</feed>"#;

const FEEDS: &str = r#"
name: feeds
inputs:
  base: { type: string }
steps:
  news:
    uses: feed.read
    with:
      url: ${{ inputs.base }}/news.rss
      allow_hosts: [127.0.0.1]
      dedupe: true
  wire:
    uses: feed.read
    with:
      url: ${{ inputs.base }}/wire.atom
      allow_hosts: [127.0.0.1]
      since: "2026-01-01"
  broken:
    uses: feed.read
    with:
      url: ${{ inputs.base }}/broken.rss
      allow_hosts: [127.0.0.1]
"#;

fn ids(out: &Value) -> Vec<String> {
    out["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn feeds(db: Db) {
    let mut h = Harness::new(db).await;
    h.register(mediaflow_http::plugins());
    let routes: Routes = Arc::default();
    let put = |path: &str, ctype: &str, body: Vec<u8>| {
        routes
            .lock()
            .unwrap()
            .insert(path.into(), (200, ctype.into(), body, None));
    };
    put(
        "/news.rss",
        "application/rss+xml",
        rss(&[
            ("a", "Fri, 04 Dec 2026 08:00:00 GMT"),
            ("b", "Fri, 04 Dec 2026 07:00:00 GMT"),
            ("c", "Fri, 04 Dec 2026 06:00:00 GMT"),
        ]),
    );
    put(
        "/wire.atom",
        "application/atom+xml",
        ATOM.as_bytes().to_vec(),
    );
    put(
        "/broken.rss",
        "application/rss+xml",
        b"<rss version=\"2.0\"><channel><item><title>Unclosed".to_vec(),
    );
    let port = serve(routes.clone()).await;
    let inputs = json!({ "base": format!("http://127.0.0.1:{port}") });

    let report = h.run(FEEDS, inputs.clone()).await;
    // The malformed feed fails its own step; the others finish.
    assert_eq!(report.status, RunStatus::Failed, "{report:#?}");
    let err = error(&report, "broken");
    assert!(
        err.contains("bad_feed") && err.contains("broken.rss"),
        "{err}"
    );
    let news = outputs(&report, "news");
    assert_eq!(ids(&news), ["a", "b", "c"], "{news}");
    assert_eq!(news["feed"]["kind"], "rss2");
    assert_eq!(news["feed"]["title"], "The Daily Example");
    let a = &news["items"][0];
    assert_eq!(a["title"], "Story a");
    assert_eq!(a["link"], "https://news.example.com/a");
    assert_eq!(a["summary"], "Summary of a.");
    assert_eq!(a["content"], "<p>The whole of a.</p>");
    assert_eq!(a["authors"], json!(["Ann Reporter"]));
    assert_eq!(a["categories"], json!(["politics"]));
    assert_eq!(a["published"], "2026-12-04T08:00:00+00:00");
    let wire = outputs(&report, "wire");
    assert_eq!(wire["feed"]["kind"], "atom");
    assert_eq!(ids(&wire), ["urn:uuid:entry-budget"], "{wire}");
    assert_eq!(wire["older"], 1);
    assert_eq!(wire["items"][0]["authors"], json!(["Bob Wire"]));
    assert_eq!(wire["items"][0]["link"], "https://wire.example.org/budget");

    // The next edition drops "c" and adds "d": with dedupe, only "d" is new.
    put(
        "/news.rss",
        "application/rss+xml",
        rss(&[
            ("d", "Sat, 05 Dec 2026 08:00:00 GMT"),
            ("a", "Fri, 04 Dec 2026 08:00:00 GMT"),
            ("b", "Fri, 04 Dec 2026 07:00:00 GMT"),
        ]),
    );
    let again = h.run(FEEDS, inputs).await;
    let news = outputs(&again, "news");
    assert_eq!(ids(&news), ["d"], "{news}");
    assert_eq!(news["already_seen"], 2);
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_sqlite() {
    feeds(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_postgres() {
    feeds(Db::Postgres).await;
}

const REQUESTS: &str = r#"
name: requests
inputs:
  base: { type: string }
steps:
  refused:
    uses: http.request
    with:
      url: ${{ inputs.base }}/news.rss
  allowed:
    uses: http.request
    with:
      url: ${{ inputs.base }}/news.rss
      allow_hosts: [127.0.0.1]
  post:
    uses: http.request
    with:
      method: POST
      url: ${{ inputs.base }}/echo
      json: { story: a00042, score: 0.9 }
      allow_hosts: [127.0.0.1]
  form:
    uses: http.request
    with:
      method: POST
      url: ${{ inputs.base }}/echo
      form: { q: "budget day", page: 2 }
      allow_hosts: [127.0.0.1]
  big:
    uses: http.request
    with:
      url: ${{ inputs.base }}/big
      max_bytes: 1000
      allow_hosts: [127.0.0.1]
  hop:
    uses: http.request
    with:
      url: ${{ inputs.base_localhost }}/hop
      allow_hosts: [localhost]
  missing:
    uses: http.request
    with:
      url: ${{ inputs.base }}/nothing-here
      allow_hosts: [127.0.0.1]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_checked_and_limited() {
    let mut h = Harness::new(Db::Sqlite).await;
    h.register(mediaflow_http::plugins());
    let routes: Routes = Arc::default();
    let port = serve(routes.clone()).await;
    {
        let mut r = routes.lock().unwrap();
        r.insert(
            "/news.rss".into(),
            (
                200,
                "application/rss+xml".into(),
                rss(&[("a", "Fri, 04 Dec 2026 08:00:00 GMT")]),
                None,
            ),
        );
        r.insert(
            "/big".into(),
            (200, "text/plain".into(), vec![b'x'; 2 << 20], None),
        );
        // A redirect from an allowed name to an address that is not on the list.
        r.insert(
            "/hop".into(),
            (
                302,
                "text/plain".into(),
                Vec::new(),
                Some(format!("location: http://127.0.0.1:{port}/news.rss")),
            ),
        );
    }
    let yaml = REQUESTS.replace(
        "inputs:\n  base: { type: string }",
        "inputs:\n  base: { type: string }\n  base_localhost: { type: string }",
    );
    let inputs = json!({
        "base": format!("http://127.0.0.1:{port}"),
        "base_localhost": format!("http://localhost:{port}"),
    });
    let report = h.run(&yaml, inputs).await;
    assert_eq!(report.status, RunStatus::Failed);

    // Loopback without an allow-list: refused, naming the address and the way out.
    let err = error(&report, "refused");
    assert!(
        err.contains("host_refused") && err.contains("127.0.0.1") && err.contains("allow_hosts"),
        "{err}"
    );
    let allowed = outputs(&report, "allowed");
    assert_eq!(allowed["status"], 200);
    assert_eq!(allowed["media_type"], "application/rss+xml");
    assert!(allowed["text"].as_str().unwrap().contains("Story a"));

    let post = outputs(&report, "post");
    assert_eq!(post["json"]["content_type"], "application/json");
    let sent: Value = serde_json::from_str(post["json"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent, json!({ "story": "a00042", "score": 0.9 }));
    let form = outputs(&report, "form");
    assert_eq!(
        form["json"]["content_type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(form["json"]["body"], "page=2&q=budget+day");

    // The size limit stops the body, with the limit in the message.
    let err = error(&report, "big");
    assert!(err.contains("too_large") && err.contains("1000"), "{err}");
    // The redirect leads to a host that is not on the list: checked again, refused.
    let err = error(&report, "hop");
    assert!(
        err.contains("host_refused") && err.contains("127.0.0.1"),
        "{err}"
    );
    let err = error(&report, "missing");
    assert!(err.contains("http_status") && err.contains("404"), "{err}");
    h.cleanup().await;
}

//! `feed.read` and `http.request` against a real HTTP server on 127.0.0.1 serving RSS and
//! Atom documents written here: entries read with their fields, a malformed feed refused with
//! a clear error while a sibling step goes on, `dedupe: true` across two runs (SQLite and
//! PostgreSQL), loopback refused unless allow-listed, redirects checked again, and the
//! response size limit.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mediaflow_store::RunStatus;
use mediaflow_tests::{step_error as error, step_outputs as outputs, Db, Harness};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// path → (status, content type, body, extra header)
type Routes = Arc<Mutex<HashMap<String, (u16, String, Vec<u8>, Option<String>)>>>;

/// A small HTTP/1.1 server: one response per connection. `POST /echo` answers the request
/// body back as JSON with its content type, `GET /headers` the request's headers. A route
/// whose extra header is `no-length` is sent without a length, ending when the connection
/// closes.
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
                let mut headers = serde_json::Map::new();
                for l in lines {
                    if let Some((k, v)) = l.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), json!(v.trim()));
                    }
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
                } else if path == "/headers" {
                    (
                        200,
                        "application/json".to_owned(),
                        Value::Object(headers).to_string().into_bytes(),
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
                    "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\nconnection: close\r\n"
                );
                if extra.as_deref() != Some("no-length") {
                    head.push_str(&format!("content-length: {}\r\n", payload.len()));
                }
                if let Some(h) = extra.filter(|h| h != "no-length") {
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

/// The store's side of `dedupe:`: two reads at once split the entries between them, a limit
/// leaves the rest for later, and entries gone from the feed are forgotten.
async fn claims(db: Db) {
    let h = Harness::new(db).await;
    let day = Duration::from_secs(86_400);
    let ids: Vec<String> = (0..50).map(|i| format!("e{i}")).collect();
    let (a, b) = tokio::join!(
        h.store.claim_feed_entries("f", &ids, usize::MAX, day),
        h.store.claim_feed_entries("f", &ids, usize::MAX, day)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.claimed.is_disjoint(&b.claimed), "{a:?} {b:?}");
    assert_eq!(a.claimed.len() + b.claimed.len(), 50);
    assert_eq!(a.seen + b.seen, 50);
    let more: Vec<String> = (0..60).map(|i| format!("e{i}")).collect();
    let c = h
        .store
        .claim_feed_entries("f", &more, 4, day)
        .await
        .unwrap();
    let want: HashSet<String> = (50..54).map(|i| format!("e{i}")).collect();
    assert_eq!((c.claimed, c.seen), (want, 50));
    // Another feed's ids are its own.
    let other = h
        .store
        .claim_feed_entries("g", &ids, usize::MAX, day)
        .await
        .unwrap();
    assert_eq!(other.claimed.len(), 50);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let last = vec!["e59".to_owned()];
    let d = h
        .store
        .claim_feed_entries("f", &last, usize::MAX, Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!((d.claimed.len(), d.forgotten), (1, 54));
    assert!(h.store.feed_seen("f", &ids).await.unwrap().is_empty());
    assert_eq!(h.store.feed_seen("g", &ids).await.unwrap().len(), 50);
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_sqlite() {
    claims(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_postgres() {
    claims(Db::Postgres).await;
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
  stream:
    uses: http.request
    with:
      url: ${{ inputs.base }}/stream
      max_bytes: 1000
      allow_hosts: [127.0.0.1]
  hop:
    uses: http.request
    with:
      url: ${{ inputs.base }}/hop
      allow_hosts: [127.0.0.1]
  localhost:
    uses: http.request
    with:
      url: ${{ inputs.base_localhost }}/news.rss
  away:
    uses: http.request
    with:
      url: ${{ inputs.base }}/away
      headers: { authorization: "Bearer t0ken", x-api-key: k3y, cookie: "s=1", accept: text/x-test }
      allow_hosts: [127.0.0.1]
  stay:
    uses: http.request
    with:
      url: ${{ inputs.base_credentials }}/stay
      headers: { x-api-key: k3y }
      allow_hosts: [127.0.0.1]
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
    let other = serve(Arc::default()).await;
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
        // No length to refuse it by: the limit has to stop it as it comes.
        r.insert(
            "/stream".into(),
            (
                200,
                "text/plain".into(),
                vec![b'x'; 1 << 20],
                Some("no-length".into()),
            ),
        );
        let redirect = |to: String| {
            (
                302,
                "text/plain".into(),
                Vec::new(),
                Some(format!("location: {to}")),
            )
        };
        // A redirect from an allowed address to one that is not on the list.
        r.insert(
            "/hop".into(),
            redirect(format!("http://127.0.0.2:{port}/news.rss")),
        );
        // To another origin (another port), and within this one.
        r.insert(
            "/away".into(),
            redirect(format!("http://127.0.0.1:{other}/headers")),
        );
        r.insert("/stay".into(), redirect("/headers".into()));
    }
    let yaml = REQUESTS.replace(
        "inputs:\n  base: { type: string }",
        "inputs:\n  base: { type: string }\n  base_localhost: { type: string }\n  base_credentials: { type: string }",
    );
    let inputs = json!({
        "base": format!("http://127.0.0.1:{port}"),
        "base_localhost": format!("http://localhost:{port}"),
        "base_credentials": format!("http://ann:s3cret@127.0.0.1:{port}"),
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
    let err = error(&report, "stream");
    assert!(err.contains("too_large") && err.contains("1000"), "{err}");
    // The redirect leads to an address that is not on the list: checked again, refused,
    // naming the hop.
    let err = error(&report, "hop");
    assert!(
        err.contains("host_refused") && err.contains(&format!("http://127.0.0.2:{port}/news.rss")),
        "{err}"
    );
    // A name that resolves to loopback is refused as private, not merely unlisted.
    let err = error(&report, "localhost");
    assert!(
        err.contains("host_refused") && err.contains("loopback, private"),
        "{err}"
    );
    // Leaving the origin, only harmless headers go on.
    let away = outputs(&report, "away")["json"].clone();
    assert_eq!(away["accept"], "text/x-test", "{away}");
    for secret in ["authorization", "x-api-key", "cookie"] {
        assert!(away.get(secret).is_none(), "{secret} was sent on: {away}");
    }
    // Within it, they all do, and credentials from the URL go as basic authentication
    // without showing in the URL the step returns.
    let stay = outputs(&report, "stay");
    assert_eq!(
        stay["json"]["authorization"], "Basic YW5uOnMzY3JldA==",
        "{stay}"
    );
    assert_eq!(stay["json"]["x-api-key"], "k3y", "{stay}");
    assert_eq!(stay["url"], format!("http://127.0.0.1:{port}/headers"));
    let err = error(&report, "missing");
    assert!(err.contains("http_status") && err.contains("404"), "{err}");
    h.cleanup().await;
}

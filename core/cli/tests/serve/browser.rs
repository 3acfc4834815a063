//! The web view in headless Chromium, driven through ChromeDriver's WebDriver API (Debian
//! `chromium` and `chromium-driver`; `.ci/run` and `scripts/setup.sh` install them).

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::{free_port, rt, submit, token, wait_for, Served};

/// A ChromeDriver process and one headless Chromium session on it.
struct Browser {
    driver: std::process::Child,
    http: reqwest::Client,
    session: String,
    base: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

impl Browser {
    async fn start() -> Browser {
        let driver_bin = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            .expect("chromedriver is missing: apt-get install chromium chromium-driver (scripts/setup.sh does)");
        let port = free_port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if http.get(format!("{base}/status")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"]
            }
        }}});
        let v: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session JSON");
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        Browser {
            driver,
            http,
            session,
            base,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method.clone(), url);
        if method == reqwest::Method::POST {
            req = req.json(&body);
        }
        let v: Value = req
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("JSON");
        if v["value"].get("error").is_some() {
            panic!("webdriver {path}: {v}");
        }
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({"url": url}))
            .await;
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("element id")
            .to_owned()
    }

    async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// A screenshot of the viewport, decoded.
    async fn screenshot(&self) -> image::RgbaImage {
        use base64::Engine as _;
        let b64 = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .expect("base64 PNG");
        image::load_from_memory(&png).expect("a PNG").to_rgba8()
    }
}

/// How many distinct colours a picture has (a blank page has one or two).
fn colours(img: &image::RgbaImage) -> usize {
    let mut seen = std::collections::HashSet::new();
    for p in img.pixels() {
        seen.insert(p.0);
        if seen.len() > 64 {
            break;
        }
    }
    seen.len()
}

#[test]
fn the_web_view_lists_runs_and_draws_a_run_in_headless_chromium() {
    let data = tempfile::tempdir().unwrap();
    let flows = tempfile::tempdir().unwrap();
    std::fs::write(
        flows.path().join("pair.yaml"),
        "name: pair\nsteps:\n  hello:\n    uses: text.template\n    with: { template: 'hello' }\n  world:\n    uses: text.template\n    needs: [hello]\n    with: { template: '${{ steps.hello.outputs.text }} world' }\n  broken:\n    uses: file.read\n    with: { path: /no/such/file }\n",
    )
    .unwrap();
    let run_token = token(data.path(), "run");
    let read_token = token(data.path(), "read");
    let served = Served::start(data.path(), flows.path(), &[]);
    let rt = rt();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let id = submit(&http, &served.base, &run_token, "pair").await;
        wait_for(&http, &served.base, &run_token, &id, |r| {
            r["status"] != "running"
        })
        .await;

        let b = Browser::start().await;
        // Without the cookie, pages send the browser to the sign-in form.
        b.go(&format!("{}/", served.base)).await;
        assert!(b.url().await.ends_with("/login"), "{}", b.url().await);
        let field = b.element("input[name=token]").await;
        b.call(
            reqwest::Method::POST,
            &format!("/element/{field}/value"),
            json!({"text": read_token}),
        )
        .await;
        let button = b.element("#sign-in").await;
        b.call(
            reqwest::Method::POST,
            &format!("/element/{button}/click"),
            json!({}),
        )
        .await;
        for _ in 0..100 {
            if !b.url().await.ends_with("/login") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(b.url().await, format!("{}/", served.base));
        // The cookie is HttpOnly and SameSite=Strict.
        let cookies = b.call(reqwest::Method::GET, "/cookie", Value::Null).await;
        let c = cookies
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == "mediaflow_token"))
            .expect("the sign-in cookie");
        assert_eq!(c["httpOnly"], true);
        assert_eq!(c["sameSite"], "Strict");

        let list = b.source().await;
        assert!(
            list.contains(&id) && list.contains("pair") && list.contains("failed"),
            "{list}"
        );

        b.go(&format!("{}/runs/{id}", served.base)).await;
        let page = b.source().await;
        for (step, status) in [
            ("hello", "succeeded"),
            ("world", "succeeded"),
            ("broken", "failed"),
        ] {
            assert!(
                page.contains(&format!("data-step=\"{step}\" data-status=\"{status}\"")),
                "{step} is not shown {status}:\n{page}"
            );
        }
        assert!(page.contains("hello world"), "outputs are shown");
        assert!(page.contains("class=\"edge\""), "the DAG has its edge");
        let shot = b.screenshot().await;
        assert!(shot.width() > 100 && shot.height() > 100);
        assert!(colours(&shot) > 8, "the screenshot is blank");
    });
}

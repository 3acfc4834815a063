//! `mediaflow serve`'s REST API over real HTTP on 127.0.0.1, on SQLite and on the real
//! PostgreSQL: submitting, following, cancelling and re-running runs, artifacts, tokens,
//! and refusing what a submitted workflow must not do.

use std::time::Duration;

use mediaflow_server::{create_token, Scope};
use mediaflow_store::RunStatus;
use mediaflow_tests::on_both_backends;
use serde_json::{json, Value};

use crate::common::{files_root, Api, HELLO};

pub fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

on_both_backends! {
    async fn submit_follow_and_fetch(h) {
        let api = Api::start(h).await;
        // By name, from the workflows directory.
        let id = api.submit("hello", json!({"who": "newsroom"})).await;
        let events = api.follow(&id).await;
        let n = names(&events);
        assert_eq!(n.first(), Some(&"snapshot"), "{n:?}");
        assert_eq!(n.last(), Some(&"run_finished"), "{n:?}");
        assert_eq!(events.last().unwrap().1["status"], "succeeded");
        let (status, run) = api.get(&format!("/api/v1/runs/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(run["status"], "succeeded");
        assert_eq!(run["outputs"]["text"], "hello newsroom");
        assert_eq!(run["steps"]["greet"]["status"], "succeeded");
        assert!(run["logs"].is_array());

        // As YAML text; the store has the run as the CLI would.
        let text = HELLO.replace("name: hello", "name: hello-text");
        let id2 = api.submit(&text, json!({})).await;
        let events = api.follow(&id2).await;
        assert_eq!(events.last().unwrap().1["status"], "succeeded", "{events:?}");
        let stored = h.store.get_run(&id2).await.unwrap();
        assert_eq!(stored.status, RunStatus::Succeeded);
        assert_eq!(stored.workflow_name, "hello-text");

        // Listing: filters and pages.
        let (_, page) = api.get("/api/v1/runs?workflow=hello&status=succeeded").await;
        let ids: Vec<&str> = page["runs"].as_array().unwrap().iter().filter_map(|r| r["id"].as_str()).collect();
        assert_eq!(ids, vec![id.as_str()]);
        let (_, first) = api.get("/api/v1/runs?limit=1").await;
        assert_eq!(first["runs"][0]["id"], id2.as_str());
        let cursor = first["next_cursor"].as_str().expect("a next page");
        let (_, second) = api.get(&format!("/api/v1/runs?limit=1&cursor={cursor}")).await;
        assert_eq!(second["runs"][0]["id"], id.as_str());
        assert!(second.get("next_cursor").is_none(), "{second}");
        let (status, _) = api.get("/api/v1/runs?status=bogus").await;
        assert_eq!(status, 400);
        let (_, later) = api.get("/api/v1/runs?since=2999-01-01T00:00:00Z").await;
        assert_eq!(later["runs"].as_array().unwrap().len(), 0);

        // The workflows directory, with the one that does not compile.
        let (_, wfs) = api.get("/api/v1/workflows").await;
        let broken = wfs.as_array().unwrap().iter().find(|w| w["name"] == "broken").unwrap();
        assert_eq!(broken["error"]["error"]["code"], "invalid_workflow");
        let hello = wfs.as_array().unwrap().iter().find(|w| w["name"] == "hello").unwrap();
        assert_eq!(hello["inputs"][0]["name"], "who");
        let (status, _) = api.post("/api/v1/runs", json!({"workflow": "nope"})).await;
        assert_eq!(status, 404);
        let (_, plugins) = api.get("/api/v1/plugins").await;
        assert!(plugins.as_array().unwrap().iter().any(|p| p["name"] == "text.template"));

        // Metrics: the runs from the store, the step durations from this process.
        let metrics = api.http.get(api.url("/metrics")).bearer_auth(&api.read).send().await.unwrap();
        assert_eq!(metrics.status().as_u16(), 200);
        assert!(metrics.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
        let text = metrics.text().await.unwrap();
        assert!(text.contains("mediaflow_runs{workflow=\"hello\",status=\"succeeded\"} 1"), "{text}");
        assert!(text.contains("mediaflow_step_duration_seconds_count{plugin=\"text.template\"} 2"), "{text}");
        assert!(text.contains("mediaflow_steps_running 0"), "{text}");
    }

    async fn a_bad_workflow_is_422_with_its_line(h) {
        let api = Api::start(h).await;
        let yaml = "name: bad\nsteps:\n  a:\n    uses: no.such.plugin\n";
        let (status, body) = api.post("/api/v1/runs", json!({"workflow": yaml})).await;
        assert_eq!(status, 422, "{body}");
        let d = &body["error"]["diagnostics"][0];
        assert_eq!(d["file"], "submitted.yaml");
        assert_eq!(d["line"], 4, "{body}");
        assert_eq!(d["step"], "a");
        assert!(d["column"].as_u64().unwrap() > 0);
        // A named workflow that does not compile names its file.
        let (status, body) = api.post("/api/v1/runs", json!({"workflow": "broken"})).await;
        assert_eq!(status, 422, "{body}");
        assert!(body["error"]["diagnostics"][0]["file"].as_str().unwrap().ends_with("broken.yaml"));
        // Bad inputs and a body that is not the API's.
        let (status, body) = api.post("/api/v1/runs", json!({"workflow": "hello", "inputs": {"who": 3}})).await;
        assert_eq!(status, 400, "{body}");
        let (status, body) = api.post("/api/v1/runs", json!({"flow": "hello"})).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "bad_request");
        // Nothing was stored for any of them.
        assert!(h.store.list_runs(&Default::default()).await.unwrap().is_empty());
    }

    async fn cancel_a_running_run(h) {
        let api = Api::start(h).await;
        let yaml = "name: slow\nsteps:\n  wait:\n    uses: test.probe\n    with: { key: slow, ms: 600000 }\n  other:\n    uses: test.probe\n    with: { key: quick }\n";
        let id = api.submit(yaml, json!({})).await;
        // Wait until the step is running, through the store.
        for _ in 0..600 {
            if h.probe.calls("slow") == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(h.probe.calls("slow"), 1);
        let (status, body) = api.post(&format!("/api/v1/runs/{id}/cancel"), json!({})).await;
        assert_eq!(status, 202, "{body}");
        let events = api.follow(&id).await;
        assert_eq!(events.last().unwrap().1["status"], "cancelled", "{events:?}");
        let run = h.store.get_run(&id).await.unwrap();
        assert_eq!(run.status, RunStatus::Cancelled);
        // The sibling branch was not taken down with it.
        assert_eq!(h.probe.calls("quick"), 1);
        // Cancelling a finished run is a conflict; an unknown run is 404.
        let (status, _) = api.post(&format!("/api/v1/runs/{id}/cancel"), json!({})).await;
        assert_eq!(status, 409);
        let (status, _) = api.post("/api/v1/runs/nope/cancel", json!({})).await;
        assert_eq!(status, 404);
    }

    async fn rerun_from_a_step_keeps_the_steps_before_it(h) {
        let api = Api::start(h).await;
        let yaml = "name: chain\nsteps:\n  a:\n    uses: test.probe\n    with: { key: a, value: 1 }\n  b:\n    uses: test.probe\n    needs: [a]\n    with: { key: b, value: '${{ steps.a.outputs.value }}' }\n  c:\n    uses: test.probe\n    needs: [b]\n    with: { key: c }\n  side:\n    uses: test.probe\n    with: { key: side }\n";
        let id = api.submit(yaml, json!({})).await;
        api.follow(&id).await;
        let before = h.store.steps(&id).await.unwrap();
        let (status, body) = api.post(&format!("/api/v1/runs/{id}/rerun"), json!({"from": "b"})).await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["rerun"], json!(["b", "c"]));
        let events = api.follow(&id).await;
        assert_eq!(events.last().unwrap().1["status"], "succeeded", "{events:?}");
        let after = h.store.steps(&id).await.unwrap();
        let rec = |v: &[mediaflow_store::StepRecord], s: &str| {
            v.iter().find(|r| r.step_id == s).cloned().unwrap_or_else(|| panic!("no record of {s}"))
        };
        for kept in ["a", "side"] {
            assert_eq!(rec(&before, kept).started_at, rec(&after, kept).started_at, "{kept} ran again");
        }
        for again in ["b", "c"] {
            assert!(rec(&after, again).started_at > rec(&before, again).started_at, "{again} did not run again");
        }
        assert_eq!((h.probe.calls("a"), h.probe.calls("b"), h.probe.calls("c"), h.probe.calls("side")), (1, 2, 2, 1));
        let (status, body) = api.post(&format!("/api/v1/runs/{id}/rerun"), json!({"from": "zzz"})).await;
        assert_eq!(status, 400, "{body}");
    }

    async fn artifacts_download_with_their_media_type(h) {
        let api = Api::start(h).await;
        let name = format!("{}.txt", uuid::Uuid::now_v7().simple());
        std::fs::write(files_root().join(&name), "bulletin text\n").unwrap();
        let yaml = format!("name: art\nsteps:\n  read:\n    uses: file.read\n    with: {{ path: {name}, as: artifact }}\noutputs:\n  file: ${{{{ steps.read.outputs.file }}}}\n");
        let id = api.submit(&yaml, json!({})).await;
        let events = api.follow(&id).await;
        assert_eq!(events.last().unwrap().1["status"], "succeeded", "{events:?}");
        let (_, run) = api.get(&format!("/api/v1/runs/{id}")).await;
        let sha = run["outputs"]["file"]["sha256"].as_str().expect("an artifact").to_owned();
        let resp = api.http.get(api.url(&format!("/api/v1/artifacts/{sha}"))).bearer_auth(&api.read).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(resp.headers()["content-type"], "text/plain");
        assert_eq!(resp.bytes().await.unwrap().as_ref(), b"bulletin text\n");
        let (status, _) = api.get(&format!("/api/v1/artifacts/{}", "0".repeat(64))).await;
        assert_eq!(status, 404);
        let (status, _) = api.get("/api/v1/artifacts/..%2F..%2Fetc%2Fpasswd").await;
        assert_eq!(status, 400);
    }

    async fn tokens_are_checked_on_every_endpoint(h) {
        let api = Api::start(h).await;
        let post = |token: Option<String>| {
            let mut r = api.http.post(api.url("/api/v1/runs")).json(&json!({"workflow": "hello"}));
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r.send()
        };
        assert_eq!(post(None).await.unwrap().status().as_u16(), 401);
        let wrong = format!("{}0", &api.run[..api.run.len() - 1]);
        let wrong = if wrong == api.run { format!("{}1", &api.run[..api.run.len() - 1]) } else { wrong };
        assert_eq!(post(Some(wrong)).await.unwrap().status().as_u16(), 401);
        assert_eq!(post(Some("not-a-token".into())).await.unwrap().status().as_u16(), 401);
        let resp = post(Some(api.read.clone())).await.unwrap();
        assert_eq!(resp.status().as_u16(), 403);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "forbidden");
        // A read token reads; a revoked token does nothing.
        let (status, _) = api.get("/api/v1/runs").await;
        assert_eq!(status, 200);
        let spare = create_token(&h.store, "spare", Scope::Admin).await.unwrap();
        assert_eq!(post(Some(spare.token.clone())).await.unwrap().status().as_u16(), 201);
        h.store.revoke_token(&spare.record.id).await.unwrap();
        assert_eq!(post(Some(spare.token.clone())).await.unwrap().status().as_u16(), 401);
        // Every route but /health needs a token, GET ones included.
        for path in ["/api/v1/runs", "/api/v1/workflows", "/api/v1/plugins", "/api/v1/openapi.json", "/api/v1/runs/x", "/api/v1/runs/x/events", "/api/v1/runs/x/logs"] {
            let s = api.http.get(api.url(path)).send().await.unwrap().status().as_u16();
            assert_eq!(s, 401, "{path}");
        }
        let health = api.http.get(api.url("/health")).send().await.unwrap();
        assert_eq!(health.status().as_u16(), 200);
        let health: Value = health.json().await.unwrap();
        assert_eq!(health["store"]["ok"], true);
        // Only a hash of each token is stored.
        for t in h.store.tokens().await.unwrap() {
            assert!(!api.run.contains(&t.secret_sha256) && !api.read.contains(&t.secret_sha256));
        }
        api.service.shutdown(Duration::from_secs(1)).await;
    }

    async fn a_submitted_workflow_cannot_reach_out(h) {
        let api = Api::start(h).await;
        // file.read outside the files root: the step fails, the run reports why.
        let yaml = "name: peek\nsteps:\n  peek:\n    uses: file.read\n    with: { path: /etc/passwd }\n  up:\n    uses: file.read\n    with: { path: ../../../../etc/passwd }\n";
        let id = api.submit(yaml, json!({})).await;
        let events = api.follow(&id).await;
        assert_eq!(events.last().unwrap().1["status"], "failed");
        let (_, run) = api.get(&format!("/api/v1/runs/{id}")).await;
        for step in ["peek", "up"] {
            assert_eq!(run["steps"][step]["error"]["code"], "path_outside_root", "{run}");
        }
        // A symbolic link out of the files root.
        let link = files_root().join(format!("{}-link", uuid::Uuid::now_v7().simple()));
        std::os::unix::fs::symlink("/etc", &link).unwrap();
        let yaml = format!("name: link\nsteps:\n  via:\n    uses: file.read\n    with: {{ path: '{}/passwd' }}\n", link.file_name().unwrap().to_str().unwrap());
        let id = api.submit(&yaml, json!({})).await;
        api.follow(&id).await;
        let (_, run) = api.get(&format!("/api/v1/runs/{id}")).await;
        assert_eq!(run["steps"]["via"]["error"]["code"], "path_outside_root", "{run}");
        // wasm: only components inside the plugin directories, by a relative path.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("evil.wasm"), b"\0asm").unwrap();
        std::os::unix::fs::symlink(outside.path().join("evil.wasm"), api.plugins.path().join("linked.wasm")).unwrap();
        for reference in [
            outside.path().join("evil.wasm").display().to_string(),
            "../evil.wasm".to_owned(),
            "linked.wasm".to_owned(),
        ] {
            let yaml = format!("name: w\nsteps:\n  x:\n    uses: wasm:{reference}\n");
            let (status, body) = api.post("/api/v1/runs", json!({"workflow": yaml})).await;
            assert_eq!(status, 422, "{reference}: {body}");
            let d = &body["error"]["diagnostics"][0];
            assert_eq!(d["line"], 4, "{body}");
            assert!(d["message"].as_str().unwrap().contains("is not allowed here"), "{reference}: {body}");
        }
    }

    async fn openapi_lists_every_route(h) {
        let api = Api::start(h).await;
        let (status, doc) = api.get("/api/v1/openapi.json").await;
        assert_eq!(status, 200);
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let paths = doc["paths"].as_object().unwrap();
        for (path, method) in [
            ("/api/v1/runs", "post"), ("/api/v1/runs", "get"), ("/api/v1/runs/{id}", "get"),
            ("/api/v1/runs/{id}/logs", "get"), ("/api/v1/runs/{id}/events", "get"),
            ("/api/v1/runs/{id}/cancel", "post"), ("/api/v1/runs/{id}/rerun", "post"),
            ("/api/v1/artifacts/{sha256}", "get"), ("/api/v1/workflows", "get"),
            ("/api/v1/plugins", "get"), ("/api/v1/openapi.json", "get"), ("/health", "get"),
            ("/metrics", "get"),
        ] {
            assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} missing");
        }
        // A real validator accepts it (openapi-spec-validator, in the tests' reference venv).
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), serde_json::to_vec(&doc).unwrap()).unwrap();
        let checked = std::process::Command::new(mediaflow_tests::reference_python())
            .args(["-c", "import json, sys; from openapi_spec_validator import validate; validate(json.load(open(sys.argv[1]))); print('valid')"])
            .arg(file.path())
            .output()
            .expect("validator runs");
        assert!(
            checked.status.success() && String::from_utf8_lossy(&checked.stdout).contains("valid"),
            "openapi-spec-validator: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
        // Every documented route is served (401 without a token, or 200 for /health).
        for (path, item) in paths {
            let concrete = path.replace("{id}", "x").replace("{sha256}", &"0".repeat(64));
            for method in item.as_object().unwrap().keys() {
                let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let s = api.http.request(m, api.url(&concrete)).send().await.unwrap().status().as_u16();
                assert!(s == 401 || (path == "/health" && s == 200), "{method} {path}: {s}");
            }
        }
    }
}

//! WebAssembly plugins built from source (`tests/wasm`, `plugins/wasm`) running through the
//! engine: the sandbox holds against hostile plugins, grants gate the capabilities, and a
//! failing plugin fails only its step.

use std::sync::Arc;
use std::time::Duration;

use mediaflow_plugin_api::Plugin;
use mediaflow_store::{RunStatus, StepStatus};
use mediaflow_tests::guests::guest;
use mediaflow_tests::{on_both_backends, Db, Harness};
use mediaflow_wasm_host::{WasmConfig, WasmLoader, WasmRuntime};
use serde_json::{json, Value};

fn limits() -> WasmConfig {
    WasmConfig {
        max_memory: 64 << 20,
        timeout: Duration::from_secs(2),
        ..WasmConfig::default()
    }
}

/// A harness whose registry resolves `uses: wasm:…`.
async fn harness(db: Db, config: WasmConfig) -> (Harness, WasmRuntime) {
    let mut h = Harness::new(db).await;
    let runtime = WasmRuntime::new(config).expect("wasm runtime");
    add_loader(&mut h, &runtime);
    (h, runtime)
}

fn add_loader(h: &mut Harness, runtime: &WasmRuntime) {
    h.registry.add_loader(
        "wasm",
        Arc::new(WasmLoader {
            runtime: runtime.clone(),
        }),
    );
}

fn uses(name: &str) -> String {
    format!("wasm:{}", guest(name).display())
}

fn error_of(r: &mediaflow_engine::RunReport, step: &str) -> Value {
    r.steps[step].error.clone().unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plugins_are_stopped_and_only_their_steps_fail() {
    let (h, _rt) = harness(Db::Sqlite, limits()).await;
    let hostile = uses("hostile");
    let echo = uses("trivial");
    let yaml = format!(
        r#"
steps:
  spin:    {{ uses: "{hostile}", with: {{ attack: loop }} }}
  hoard:   {{ uses: "{hostile}", with: {{ attack: memory }} }}
  passwd:  {{ uses: "{hostile}", with: {{ attack: passwd }} }}
  env:     {{ uses: "{hostile}", with: {{ attack: env }} }}
  network: {{ uses: "{hostile}", with: {{ attack: network }} }}
  panic:   {{ uses: "{hostile}", with: {{ attack: panic }} }}
  exit:    {{ uses: "{hostile}", with: {{ attack: exit }} }}
  fine:    {{ uses: "{echo}", with: {{ text: still here }} }}
  after:   {{ uses: text.template, needs: [fine], with: {{ template: "${{{{ steps.fine.outputs.text }}}}!" }} }}
"#
    );
    let r = h.run(&yaml, json!({})).await;
    assert_eq!(r.status, RunStatus::Failed, "{r:#?}");
    // Other branches ran to the end.
    assert_eq!(r.steps["fine"].status, StepStatus::Succeeded);
    assert_eq!(r.steps["after"].outputs["text"], json!("still here!"));

    let spin = error_of(&r, "spin");
    assert_eq!(spin["code"], "timeout", "{spin}");
    assert!(
        spin["message"].as_str().unwrap().contains("deadline"),
        "{spin}"
    );

    let hoard = error_of(&r, "hoard");
    assert_eq!(hoard["code"], "memory_limit", "{hoard}");
    assert!(
        hoard["message"].as_str().unwrap().contains("64 MiB"),
        "{hoard}"
    );

    // The host refused (the guest reports the error and its kind), rather than the guest
    // being unable to try (`Unsupported`): no directory is preopened, so /etc/passwd, which
    // exists here, does not exist for the guest; the socket connect is denied by WASI's
    // address check.
    assert!(std::path::Path::new("/etc/passwd").exists());
    for (step, what, kind) in [
        ("passwd", "reading /etc/passwd", "[kind: NotFound]"),
        ("env", "reading the environment", "no variables visible"),
        (
            "network",
            "connecting to 127.0.0.1:5432",
            "[kind: PermissionDenied]",
        ),
    ] {
        let e = error_of(&r, step);
        assert_eq!(
            e["code"], "denied",
            "{step}: the host refused, the plugin reported it: {e}"
        );
        let message = e["message"].as_str().unwrap();
        assert!(message.starts_with(what), "{e}");
        assert!(message.contains(kind), "{step}: {e}");
        assert!(r.steps[step].outputs.get("leaked").is_none());
    }

    let panic = error_of(&r, "panic");
    assert_eq!(panic["code"], "plugin_panicked", "{panic}");
    assert!(
        panic["message"]
            .as_str()
            .unwrap()
            .contains("hostile plugin panicked on purpose"),
        "{panic}"
    );

    // A guest that calls `exit` ends its own call, with a code and its status (WASI 0.2
    // carries only success or failure: the guest's `exit(3)` arrives as 1).
    let exit = error_of(&r, "exit");
    assert_eq!(exit["code"], "plugin_exited", "{exit}");
    assert!(
        exit["message"]
            .as_str()
            .unwrap()
            .contains("called `exit` with status 1"),
        "{exit}"
    );

    // The reasons are in the database, and the host serves the next run.
    let stored = h.store.steps(&r.run_id).await.unwrap();
    let spin_row = stored.iter().find(|s| s.step_id == "spin").unwrap();
    assert_eq!(spin_row.status, StepStatus::Failed);
    assert_eq!(spin_row.error.as_ref().unwrap()["code"], "timeout");
    let again = h
        .run(
            &format!("steps:\n  e: {{ uses: \"{echo}\", with: {{ text: again }} }}\n"),
            json!({}),
        )
        .await;
    assert_eq!(again.status, RunStatus::Succeeded, "{again:?}");
    assert_eq!(again.steps["e"].outputs["text"], json!("again"));
    h.cleanup().await;
}

/// A step's `timeout:` stops the guest itself, whether it computes (`loop`) or waits in a
/// WASI call (`sleep`: an hour in `std::thread::sleep`): its call gives its slot (and its
/// blocking thread) back, so the process could exit. Nothing here waits for a guest that
/// did not stop: failures are collected, and the runtime is shut down without waiting.
#[test]
fn a_step_timeout_stops_a_spinning_or_sleeping_plugin() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let problems: Vec<String> = runtime.block_on(async {
        let mut problems = Vec::new();
        // The host's own deadline is far away: the step's `timeout:` must reach the sandbox.
        let config = WasmConfig {
            timeout: Duration::from_secs(600),
            ..limits()
        };
        let (h, wasm) = harness(Db::Sqlite, config).await;
        let hostile = uses("hostile");
        for attack in ["loop", "sleep"] {
            let r = h
                .run(
                    &format!("steps:\n  stuck: {{ uses: \"{hostile}\", timeout: 300ms, with: {{ attack: {attack} }} }}\n"),
                    json!({}),
                )
                .await;
            let code = error_of(&r, "stuck")["code"].clone();
            if code != "timeout" {
                problems.push(format!("{attack}: the step ended with {code}, not timeout"));
            }
            if !stops(&wasm).await {
                problems.push(format!("{attack}: the guest still runs after its step timed out"));
            }
        }
        // The host's own deadline stops a sleeping guest too, with its reason.
        let config = WasmConfig {
            timeout: Duration::from_millis(300),
            ..limits()
        };
        let (h2, wasm2) = harness(Db::Sqlite, config).await;
        let r = h2
            .run(
                // (The step's own timeout only bounds the test if the host's deadline fails.)
                &format!("steps:\n  stuck: {{ uses: \"{hostile}\", timeout: 20s, with: {{ attack: sleep }} }}\n"),
                json!({}),
            )
            .await;
        let e = error_of(&r, "stuck");
        if e["code"] != "timeout" || !e["message"].as_str().unwrap_or("").contains("300ms deadline") {
            problems.push(format!("the host's deadline: {e}"));
        }
        if !stops(&wasm2).await {
            problems.push("the host's deadline did not stop the sleeping guest".to_owned());
        }
        h.cleanup().await;
        h2.cleanup().await;
        problems
    });
    runtime.shutdown_timeout(Duration::from_millis(100));
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Whether every call of `runtime` has ended within ten seconds.
async fn stops(runtime: &WasmRuntime) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while runtime.running_calls() > 0 {
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// More calls at once than the instance pool holds (128): at most 112 run, the rest wait
/// for a slot instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_slot_limit_wait_for_a_slot() {
    let (h, wasm) = harness(Db::Sqlite, limits()).await;
    let hostile = uses("hostile");
    let yaml = format!(
        "inputs: {{ items: list }}\nsteps:\n  many:\n    uses: \"{hostile}\"\n    for_each: ${{{{ inputs.items }}}}\n    with: {{ attack: sleep, ms: 400 }}\n"
    );
    let options = mediaflow_engine::EngineOptions {
        max_parallel: 200,
        no_cache: true,
        ..Default::default()
    };
    let items: Vec<u32> = (0..140).collect();
    let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sampler = tokio::spawn({
        let (wasm, peak) = (wasm.clone(), peak.clone());
        async move {
            loop {
                peak.fetch_max(wasm.running_calls(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let r = h
        .run_with(
            &yaml,
            json!({ "items": items }),
            options,
            mediaflow_engine::RunControl::default(),
        )
        .await;
    sampler.abort();
    assert_eq!(
        r.status,
        RunStatus::Succeeded,
        "{:?}",
        r.steps["many"].error
    );
    assert_eq!(r.steps["many"].outputs.as_array().unwrap().len(), 140);
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    assert!(peak > 100, "the calls ran side by side (peak {peak})");
    assert!(peak <= 112, "{peak} calls ran at once");
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_limits_work_per_call() {
    let config = WasmConfig {
        fuel: Some(5_000_000),
        timeout: Duration::from_secs(600),
        ..limits()
    };
    let (h, _rt) = harness(Db::Sqlite, config).await;
    let hostile = uses("hostile");
    let echo = uses("trivial");
    let r = h
        .run(
            &format!("steps:\n  spin: {{ uses: \"{hostile}\", with: {{ attack: loop }} }}\n  ok: {{ uses: \"{echo}\", with: {{ text: x }} }}\n"),
            json!({}),
        )
        .await;
    assert_eq!(error_of(&r, "spin")["code"], "fuel_exhausted", "{r:?}");
    assert_eq!(
        r.steps["ok"].status,
        StepStatus::Succeeded,
        "fuel is per call"
    );
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_clock_needs_a_grant_and_output_goes_to_the_log() {
    let (h, _rt) = harness(Db::Sqlite, limits()).await;
    let hostile = uses("hostile");
    let r = h
        .run(
            &format!(
                r#"
steps:
  frozen: {{ uses: "{hostile}", with: {{ attack: clock }} }}
  real:   {{ uses: "{hostile}", permissions: [clock], with: {{ attack: clock }} }}
  chatty: {{ uses: "{hostile}", with: {{ attack: stdout }} }}
"#
            ),
            json!({}),
        )
        .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    assert_eq!(r.steps["frozen"].outputs["unix_seconds"], json!(0));
    assert!(r.steps["real"].outputs["unix_seconds"].as_u64().unwrap() > 1_700_000_000);
    let logs = h.store.logs(&r.run_id).await.unwrap();
    let chatty: Vec<_> = logs.iter().filter(|l| l.step_id == "chatty").collect();
    assert!(
        chatty.iter().any(|l| l.message == "hello from stdout"),
        "{logs:?}"
    );
    assert!(
        chatty
            .iter()
            .any(|l| l.message == "and from stderr" && l.level == "warn"),
        "{logs:?}"
    );
    h.cleanup().await;
}

on_both_backends! {
    async fn kv_is_granted_per_step_and_kept_across_runs(h) {
        let runtime = WasmRuntime::new(limits()).unwrap();
        add_loader(h, &runtime);
        let capable = uses("capable");
        let granted = format!("steps:\n  count: {{ uses: \"{capable}\", permissions: [kv], with: {{ use: kv }} }}\n");
        for expected in 1..=3 {
            let r = h.run(&granted, json!({})).await;
            assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
            assert_eq!(r.steps["count"].outputs["count"], json!(expected));
        }
        let denied = h
            .run(&format!("steps:\n  count: {{ uses: \"{capable}\", with: {{ use: kv }} }}\n"), json!({}))
            .await;
        let e = error_of(&denied, "count");
        assert_eq!(e["code"], "permission_denied", "{e}");
        assert_eq!(e["message"], "step `count` did not grant `kv` to plugin `test.capable`");
        assert_eq!(e["help"], "add `permissions: [kv]` to the step");
        // The value lives in the plugin's own namespace in the database: its name and the
        // sha256 of its code.
        let identity = runtime.load_file(&guest("capable"), None).unwrap().descriptor().identity();
        assert!(identity.starts_with("test.capable@sha256:"), "{identity}");
        assert_eq!(h.store.kv_get(&identity, "count").await.unwrap(), Some(b"3".to_vec()));
        assert_eq!(h.store.kv_get("test.capable", "count").await.unwrap(), None);

        // A component that claims the same name and version gets a namespace of its own:
        // it neither sees the count nor spoils it.
        let impostor = uses("impostor-kv");
        let r = h
            .run(&format!("steps:\n  peek: {{ uses: \"{impostor}\", permissions: [kv] }}\n"), json!({}))
            .await;
        assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
        assert_eq!(r.steps["peek"].outputs, json!({}), "it saw nothing");
        let r = h.run(&granted, json!({})).await;
        assert_eq!(r.steps["count"].outputs["count"], json!(4));
        assert_eq!(h.store.kv_get("test.hostile", "count").await.unwrap(), None);
    }

    async fn artifacts_are_read_and_written_only_when_granted(h) {
        let runtime = WasmRuntime::new(limits()).unwrap();
        add_loader(h, &runtime);
        let capable = uses("capable");
        let file = h.artifacts.store_bytes(b"breaking news", "text/plain", Some("story.txt")).await.unwrap();
        let yaml = |grant: &str| format!(
            "inputs:\n  story: {{ type: file }}\nsteps:\n  up: {{ uses: \"{capable}\", {grant} with: {{ use: artifacts, file: \"${{{{ inputs.story }}}}\" }} }}\n"
        );
        let r = h.run(&yaml("permissions: [artifacts],"), json!({"story": file.to_value()})).await;
        assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
        let out = mediaflow_plugin_api::ArtifactRef::from_value(&r.steps["up"].outputs["file"]).expect("a file output");
        let path = h.artifacts.locate(&out).await.unwrap();
        assert_eq!(std::fs::read_to_string(path).unwrap(), "BREAKING NEWS");
        let denied = h.run(&yaml(""), json!({"story": file.to_value()})).await;
        assert_eq!(error_of(&denied, "up")["code"], "permission_denied");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_may_read_only_the_artifacts_it_was_given() {
    let (h, _rt) = harness(Db::Sqlite, limits()).await;
    let capable = uses("capable");
    // The artifact exists in the store, but the step was not given it: the plugin makes up
    // the reference itself.
    let secret = h
        .artifacts
        .store_bytes(b"secret", "text/plain", None)
        .await
        .unwrap();
    let r = h
        .run(
            &format!("steps:\n  steal: {{ uses: \"{capable}\", permissions: [artifacts], with: {{ use: forge, sha256: {} }} }}\n", secret.sha256),
            json!({}),
        )
        .await;
    let e = error_of(&r, "steal");
    assert_eq!(e["code"], "permission_denied", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("is not one of step `steal`'s inputs"),
        "{e}"
    );
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_plugins_run_through_the_engine() {
    let (h, _rt) = harness(Db::Sqlite, limits()).await;
    let (ap, kw, pf) = (uses("ap-headline"), uses("keywords"), uses("profanity"));
    let r = h
        .run(
            &format!(
                r#"
inputs:
  headline: {{ type: string }}
  story: {{ type: string }}
steps:
  clean:
    uses: "{pf}"
    with: {{ text: "${{{{ inputs.headline }}}}" }}
  case:
    uses: "{ap}"
    with: {{ text: "${{{{ steps.clean.outputs.text }}}}", style: title }}
  tags:
    uses: "{kw}"
    with: {{ text: "${{{{ inputs.story }}}}", max_keywords: 5 }}
"#
            ),
            json!({
                "headline": "the damn mayor of springfield says budget is on track",
                "story": "The European Central Bank raised interest rates. Christine Lagarde said the European Central Bank would act."
            }),
        )
        .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    assert_eq!(r.steps["clean"].outputs["count"], json!(1));
    assert_eq!(
        r.steps["case"].outputs["text"],
        json!("The D*** Mayor of Springfield Says Budget Is on Track")
    );
    assert_eq!(
        r.steps["tags"].outputs["entities"][0],
        json!({"text": "European Central Bank", "count": 2})
    );
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_load_by_pin_from_a_directory_and_from_the_disk_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(guest("ap-headline"), plugins.join("ap.wasm")).unwrap();
    std::fs::write(plugins.join("junk.wasm"), b"not wasm").unwrap();
    let config = WasmConfig {
        cache_dir: Some(cache.clone()),
        ..limits()
    };
    let rt = WasmRuntime::new(config.clone()).unwrap();
    let loaded = rt.load_dir(&plugins);
    assert_eq!(loaded.len(), 2);
    let ap = loaded[0].1.as_ref().expect("ap.wasm loads");
    assert_eq!(ap.descriptor().name, "text.ap_headline");
    assert!(ap.descriptor().sandboxed);
    let junk = loaded[1]
        .1
        .as_ref()
        .err()
        .expect("junk.wasm is refused")
        .to_string();
    assert!(
        junk.contains("does not start with the WebAssembly magic bytes"),
        "{junk}"
    );

    // Compiled once, cached by sha256; a second runtime loads the cached code.
    let cached: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        })
        .collect();
    assert_eq!(cached.len(), 1);
    let name = cached[0]
        .as_ref()
        .unwrap()
        .file_name()
        .to_string_lossy()
        .to_string();
    assert!(name.starts_with(ap.sha256()), "{name}");
    let rt2 = WasmRuntime::new(config.clone()).unwrap();
    let again = rt2
        .load_file(&plugins.join("ap.wasm"), Some(ap.sha256()))
        .unwrap();
    assert_eq!(again.descriptor().name, "text.ap_headline");
    // A corrupt cache entry is recompiled, not trusted.
    std::fs::write(cache.join(&name), b"garbage").unwrap();
    let rt3 = WasmRuntime::new(config).unwrap();
    rt3.load_file(&plugins.join("ap.wasm"), None)
        .expect("recompiles");
    assert!(std::fs::metadata(cache.join(&name)).unwrap().len() > 1000);

    let wrong = "0".repeat(64);
    let err = rt
        .load_file(&plugins.join("ap.wasm"), Some(&wrong))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("but the workflow pins 000"), "{err}");
}

/// The compiled-component cache runs what it loads as machine code, so it loads only files
/// it wrote for that very component: one component's compiled file copied under another's
/// name is compiled afresh, not run.
#[test]
fn the_compiled_cache_trusts_only_files_it_wrote_for_that_component() {
    let dir = tempfile::tempdir().unwrap();
    let config = || WasmConfig {
        cache_dir: Some(dir.path().to_owned()),
        ..WasmConfig::default()
    };
    let first = WasmRuntime::new(config()).unwrap();
    first.load_file(&guest("hostile"), None).unwrap();
    first.load_file(&guest("trivial"), None).unwrap();
    drop(first);
    let cached: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(cached.len(), 2, "{cached:?}");
    // Which file is whose: the name starts with the sha256 of the component's bytes.
    let sha = |path: &std::path::Path| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
    };
    let trivial_sha = sha(&guest("trivial"));
    let (trivial_file, hostile_file): (Vec<_>, Vec<_>) = cached.into_iter().partition(|p| {
        p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&trivial_sha)
    });
    // Plant the hostile plugin's compiled code under the trivial plugin's name.
    std::fs::copy(&hostile_file[0], &trivial_file[0]).unwrap();
    let second = WasmRuntime::new(config()).unwrap();
    let loaded = second.load_file(&guest("trivial"), None).unwrap();
    assert_eq!(loaded.descriptor().name, "bench.echo");
    // And a tampered byte in a file it did write is caught the same way.
    let mut bytes = std::fs::read(&trivial_file[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&trivial_file[0], &bytes).unwrap();
    let third = WasmRuntime::new(config()).unwrap();
    assert_eq!(
        third
            .load_file(&guest("trivial"), None)
            .unwrap()
            .descriptor()
            .name,
        "bench.echo"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("mac.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
}

/// A component that declares another's name and version cannot plant cache entries for
/// it: the cache key holds the sha256 of the code. And one that declares the name of a
/// plugin the installation has is refused when the workflow compiles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_cannot_pass_for_another_plugin() {
    let (h, _rt) = harness(Db::Sqlite, limits()).await;
    let impostor = uses("impostor-echo");
    let echo = uses("trivial");
    let planted = h
        .run(
            &format!("steps:\n  a: {{ uses: \"{impostor}\", with: {{ text: hello }} }}\n"),
            json!({}),
        )
        .await;
    assert_eq!(planted.steps["a"].outputs["text"], "planted by an impostor");
    let real = h
        .run(
            &format!("steps:\n  a: {{ uses: \"{echo}\", with: {{ text: hello }} }}\n"),
            json!({}),
        )
        .await;
    assert_eq!(real.steps["a"].status, StepStatus::Succeeded, "{real:?}");
    assert_eq!(real.steps["a"].outputs["text"], "hello");

    // Where the real `bench.echo` is installed, a component claiming its name is a
    // compile error at the `uses:` line.
    let claims_builtin = guest("impostor-echo");
    let mut with_echo = mediaflow_builtin::registry();
    let runtime = WasmRuntime::new(limits()).unwrap();
    let real_echo: Arc<dyn Plugin> = runtime.load_file(&guest("trivial"), None).unwrap();
    with_echo.add([real_echo], "trivial.wasm").unwrap();
    with_echo.add_loader("wasm", Arc::new(WasmLoader { runtime }));
    let text = format!(
        "steps:\n  a:\n    uses: \"wasm:{}\"\n    with: {{ text: hello }}\n",
        claims_builtin.display()
    );
    let d = mediaflow_workflow::compile_str("claims.yaml", &text, &with_echo).unwrap_err();
    let p = &d.problems[0];
    assert_eq!(
        p.code,
        "mediaflow::plugin_name_taken",
        "{}",
        d.render(false)
    );
    assert_eq!((p.line, p.column), (3, 11));
    assert!(
        p.message.contains("calls itself `bench.echo`"),
        "{}",
        p.message
    );
    assert!(p.message.contains("trivial.wasm"), "{}", p.message);
}

// A guest that floods the log, the key-value store or the artifact store costs a bounded
// amount of storage, and its step fails with a code that says why.
on_both_backends! {
    async fn floods_cost_bounded_storage(h) {
        // The kv and artifact floods end at their quotas, well inside the host's deadline
        // even on a busy machine; the log flood goes on until its step's timeout.
        let runtime = WasmRuntime::new(WasmConfig {
            max_artifact_bytes: 32 << 20,
            timeout: Duration::from_secs(30),
            ..limits()
        })
        .unwrap();
        add_loader(h, &runtime);
        let hostile = uses("hostile");
        let r = h
            .run(
                &format!(
                    r#"
steps:
  logs:      {{ uses: "{hostile}", timeout: 2s, with: {{ attack: logflood }} }}
  kv:        {{ uses: "{hostile}", permissions: [kv], with: {{ attack: kvflood }} }}
  artifacts: {{ uses: "{hostile}", permissions: [artifacts], with: {{ attack: artifactflood }} }}
"#
                ),
                json!({}),
            )
            .await;
        assert_eq!(error_of(&r, "logs")["code"], "timeout", "{r:?}");
        let logs = h.store.logs(&r.run_id).await.unwrap();
        let flood: Vec<_> = logs.iter().filter(|l| l.step_id == "logs").collect();
        let quota = mediaflow_engine::LogQuota::default();
        assert!(flood.len() <= quota.lines + 1, "{} lines stored", flood.len());
        assert!(
            flood.last().is_some_and(|l| l.message.starts_with("log_quota:")),
            "{:?}",
            flood.last()
        );

        let kv = error_of(&r, "kv");
        assert_eq!(kv["code"], "kv_quota", "{kv}");
        let identity = runtime.load_file(&guest("hostile"), None).unwrap().descriptor().identity();
        let used = h.store.kv_usage(&identity, "").await.unwrap();
        assert!(used <= mediaflow_engine::DEFAULT_KV_QUOTA, "{used} bytes");

        let artifacts = error_of(&r, "artifacts");
        assert_eq!(artifacts["code"], "artifact_quota", "{artifacts}");
    }
}

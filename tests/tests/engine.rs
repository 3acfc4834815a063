//! Engine behaviour, observed on real runs, on SQLite and on PostgreSQL.

use std::time::Duration;

use mediaflow_engine::{EngineOptions, RunControl};
use mediaflow_store::{RunStatus, StepStatus};
use mediaflow_tests::on_both_backends;
use serde_json::json;

fn opts(max_parallel: usize) -> EngineOptions {
    EngineOptions {
        max_parallel,
        ..EngineOptions::default()
    }
}

const FOUR_SLEEPERS: &str = r#"
steps:
  a: { uses: test.probe, with: { key: a, ms: 300 } }
  b: { uses: test.probe, with: { key: b, ms: 300 } }
  c: { uses: test.probe, with: { key: c, ms: 300 } }
  d: { uses: test.probe, with: { key: d, ms: 300 } }
"#;

on_both_backends! {
    async fn independent_steps_run_in_parallel(h) {
        let r = h.run_with(FOUR_SLEEPERS, json!({}), opts(8), RunControl::default()).await;
        assert_eq!(r.status, RunStatus::Succeeded);
        assert_eq!(h.probe.max_running(), 4, "all four sleepers overlap");
    }

    async fn max_parallel_bounds_concurrency(h) {
        let r = h.run_with(FOUR_SLEEPERS, json!({}), opts(2), RunControl::default()).await;
        assert_eq!(r.status, RunStatus::Succeeded);
        assert_eq!(h.probe.max_running(), 2);
    }

    async fn plugin_concurrency_limit_is_honoured(h) {
        let yaml = FOUR_SLEEPERS.replace("test.probe", "test.single");
        let r = h.run_with(&yaml, json!({}), opts(8), RunControl::default()).await;
        assert_eq!(r.status, RunStatus::Succeeded);
        assert_eq!(h.probe.max_running(), 1);
    }

    async fn a_batching_plugin_is_held_to_its_own_limit_and_the_workflows_not_the_cores(h) {
        // `test.batched` batches its calls (max 3 at once), like `llm.generate`: the
        // engine's one-step-per-core default does not hold it back...
        let six = r#"
steps:
  each:
    uses: test.batched
    for_each: ${{ [1, 2, 3, 4, 5, 6] }}
    with: { key: b, ms: 300 }
"#;
        let r = h.run_with(six, json!({}), opts(1), RunControl::default()).await;
        assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
        assert_eq!(h.probe.max_running(), 3);
        // ...but a workflow's own `max_parallel` does.
        h.probe.max_running.store(0, std::sync::atomic::Ordering::SeqCst);
        let capped = format!("max_parallel: 2\n{}", six.replace("key: b", "key: c"));
        let r = h.run_with(&capped, json!({}), opts(8), RunControl::default()).await;
        assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
        assert_eq!(h.probe.max_running(), 2);
    }

    async fn dependencies_run_in_order(h) {
        let r = h.run(r#"
steps:
  first: { uses: test.probe, with: { key: first, ms: 100, value: 1 } }
  second: { uses: test.probe, with: { key: second, value: "${{ steps.first.outputs.value + 1 }}" } }
outputs:
  v: ${{ steps.second.outputs.value }}
"#, json!({})).await;
        assert_eq!(r.status, RunStatus::Succeeded);
        assert_eq!(r.outputs["v"], json!(2));
        assert!(h.probe.starts("first")[0] < h.probe.starts("second")[0]);
        assert_eq!(h.probe.max_running(), 1);
    }

    async fn retries_with_exponential_backoff(h) {
        let r = h.run(r#"
steps:
  flaky:
    uses: test.probe
    retry: { max_attempts: 4, backoff: 100ms, jitter: false }
    with: { key: flaky, fail: 3 }
"#, json!({})).await;
        assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
        let step = &r.steps["flaky"];
        assert_eq!(step.attempts, 4);
        assert_eq!(h.probe.calls("flaky"), 4);
        let t = h.probe.starts("flaky");
        let gaps: Vec<Duration> = t.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[0] >= Duration::from_millis(100), "first backoff {:?}", gaps[0]);
        assert!(gaps[1] >= Duration::from_millis(200), "second backoff {:?}", gaps[1]);
        assert!(gaps[2] >= Duration::from_millis(400), "third backoff {:?}", gaps[2]);
        let logs = h.store.logs(&r.run_id).await.expect("logs");
        assert!(logs.iter().any(|l| l.message.contains("attempt 1 of 4 failed")));
    }

    async fn retries_stop_at_max_attempts_and_skip_fatal_errors(h) {
        let r = h.run(r#"
steps:
  flaky:
    uses: test.probe
    retry: { max_attempts: 2, backoff: 10ms }
    with: { key: flaky, fail: 5 }
  fatal:
    uses: test.probe
    retry: { max_attempts: 5, backoff: 10ms }
    with: { key: fatal, fail: 5, fatal: true }
"#, json!({})).await;
        assert_eq!(r.status, RunStatus::Failed);
        assert_eq!(r.steps["flaky"].attempts, 2);
        assert_eq!(h.probe.calls("flaky"), 2);
        assert!(r.steps["flaky"].error.as_ref().unwrap()["message"].as_str().unwrap().contains("after 2 attempts"));
        assert_eq!(h.probe.calls("fatal"), 1, "a fatal error is not retried");
    }

    async fn step_timeout_fails_the_attempt(h) {
        let r = h.run(r#"
steps:
  slow:
    uses: test.probe
    timeout: 200ms
    retry: { max_attempts: 2, backoff: 10ms }
    with: { key: slow, ms: 5000, ignore_cancel: true }
"#, json!({})).await;
        assert_eq!(r.status, RunStatus::Failed);
        let s = &r.steps["slow"];
        assert_eq!(s.status, StepStatus::Failed);
        assert_eq!(s.attempts, 2, "a timeout is retried");
        assert_eq!(s.error.as_ref().unwrap()["code"], "timeout");
    }

    async fn run_timeout_stops_the_run(h) {
        let r = h.run(r#"
timeout: 300ms
steps:
  slow: { uses: test.probe, with: { key: slow, ms: 10000 } }
  after: { uses: test.probe, needs: [slow], with: { key: after } }
"#, json!({})).await;
        assert_eq!(r.status, RunStatus::Failed);
        assert_eq!(r.error.as_ref().unwrap()["code"], "run_timeout");
        assert_eq!(r.steps["slow"].status, StepStatus::Cancelled);
        assert_eq!(r.steps["after"].status, StepStatus::Cancelled);
        assert_eq!(h.probe.calls("after"), 0);
    }

    async fn when_false_skips_the_step_and_its_dependants(h) {
        let yaml = r#"
inputs:
  go: { type: boolean, default: false }
steps:
  maybe: { uses: test.probe, when: "${{ inputs.go }}", with: { key: maybe } }
  after: { uses: test.probe, with: { key: after, value: "${{ steps.maybe.outputs.value }}" } }
  other: { uses: test.probe, with: { key: other } }
"#;
        let r = h.run(yaml, json!({})).await;
        assert_eq!(r.status, RunStatus::Succeeded);
        assert_eq!(r.steps["maybe"].status, StepStatus::Skipped);
        assert_eq!(r.steps["after"].status, StepStatus::Skipped);
        assert_eq!(r.steps["other"].status, StepStatus::Succeeded);
        assert_eq!(h.probe.calls("maybe") + h.probe.calls("after"), 0);
        let r = h.run(yaml, json!({"go": true})).await;
        assert_eq!(r.steps["maybe"].status, StepStatus::Succeeded);
        assert_eq!(r.steps["after"].status, StepStatus::Succeeded);
    }

    async fn for_each_fans_out_with_bounded_parallelism_and_fans_in(h) {
        let r = h.run(r#"
inputs:
  names: { type: list, default: [ann, bob, cy, dee, eve] }
steps:
  greet:
    uses: test.probe
    for_each: ${{ inputs.names }}
    concurrency: 2
    with: { key: greet, ms: 100, value: "hi ${{ item }} #${{ item_index }}" }
  join:
    uses: text.template
    with:
      template: "{{ lines | join(', ') }}"
      vars: { lines: "${{ steps.greet.outputs | map(attribute='value') | list }}" }
outputs:
  all: ${{ steps.join.outputs.text }}
"#, json!({})).await;
        assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
        assert_eq!(h.probe.calls("greet"), 5);
        assert_eq!(h.probe.max_running(), 2);
        assert_eq!(r.outputs["all"], "hi ann #0, hi bob #1, hi cy #2, hi dee #3, hi eve #4");
        let g = &r.steps["greet"];
        assert_eq!(g.items.len(), 5);
        assert_eq!(g.outputs.as_array().unwrap().len(), 5);
        assert_eq!(g.outputs[4]["value"], "hi eve #4");
    }

    async fn empty_for_each_succeeds_with_an_empty_list(h) {
        let r = h.run(r#"
steps:
  none: { uses: test.probe, for_each: "${{ [] }}", with: { key: none } }
"#, json!({})).await;
        assert_eq!(r.status, RunStatus::Succeeded);
        assert_eq!(r.steps["none"].outputs, json!([]));
    }

    async fn a_failed_step_fails_only_its_dependants(h) {
        let r = h.run(r#"
steps:
  bad: { uses: test.probe, with: { key: bad, fail: 1, fatal: true } }
  child: { uses: test.probe, needs: [bad], with: { key: child } }
  grandchild: { uses: test.probe, needs: [child], with: { key: grandchild } }
  independent: { uses: test.probe, with: { key: independent, ms: 200 } }
  after_independent: { uses: test.probe, needs: [independent], with: { key: after } }
"#, json!({})).await;
        assert_eq!(r.status, RunStatus::Failed);
        assert_eq!(r.steps["bad"].status, StepStatus::Failed);
        assert_eq!(r.steps["child"].status, StepStatus::Failed);
        assert_eq!(r.steps["child"].error.as_ref().unwrap()["code"], "upstream_failed");
        assert_eq!(r.steps["grandchild"].status, StepStatus::Failed);
        assert_eq!(r.steps["independent"].status, StepStatus::Succeeded);
        assert_eq!(r.steps["after_independent"].status, StepStatus::Succeeded);
        assert_eq!(h.probe.calls("child"), 0);
        assert_eq!(r.error.as_ref().unwrap()["steps"], json!(["bad", "child", "grandchild"]));
    }

    async fn a_panicking_plugin_fails_its_step_only(h) {
        let r = h.run(r#"
steps:
  boom: { uses: test.probe, with: { key: boom, panic: true } }
  fine: { uses: test.probe, with: { key: fine, ms: 100 } }
"#, json!({})).await;
        assert_eq!(r.steps["boom"].status, StepStatus::Failed);
        let msg = r.steps["boom"].error.as_ref().unwrap()["message"].as_str().unwrap().to_owned();
        assert!(msg.contains("told to panic"), "{msg}");
        assert_eq!(r.steps["fine"].status, StepStatus::Succeeded);
    }

    async fn cache_hits_skip_execution(h) {
        let yaml = r#"
inputs:
  v: { type: integer, default: 1 }
steps:
  count: { uses: test.probe, with: { key: count, value: "${{ inputs.v }}" } }
  nocache: { uses: test.probe, cache: false, with: { key: nocache } }
outputs:
  v: ${{ steps.count.outputs.value }}
"#;
        let first = h.run(yaml, json!({})).await;
        let second = h.run(yaml, json!({})).await;
        assert_eq!(h.probe.calls("count"), 1, "the counting plugin runs once across two runs");
        assert_eq!(first.steps["count"].status, StepStatus::Succeeded);
        assert_eq!(second.steps["count"].status, StepStatus::Cached);
        assert_eq!(second.outputs["v"], json!(1));
        assert_eq!(h.probe.calls("nocache"), 2, "`cache: false` always runs");
        let third = h.run(yaml, json!({"v": 2})).await;
        assert_eq!(third.steps["count"].status, StepStatus::Succeeded);
        assert_eq!(h.probe.calls("count"), 2, "other inputs, other key");
        let no_cache = EngineOptions { no_cache: true, ..EngineOptions::default() };
        let fourth = h.run_with(yaml, json!({}), no_cache, RunControl::default()).await;
        assert_eq!(fourth.steps["count"].status, StepStatus::Succeeded);
        assert_eq!(h.probe.calls("count"), 3, "--no-cache runs again");
    }

    async fn file_inputs_are_cached_by_content(h) {
        let path = h.dir.path().join("a.txt");
        std::fs::write(&path, "one").unwrap();
        let flow = r#"
inputs:
  doc: file
steps:
  use: { uses: test.probe, with: { key: use, value: "${{ inputs.doc }}" } }
"#;
        let a = h.artifacts.store_file(&path, None).await.unwrap();
        h.run(flow, json!({"doc": a.to_value()})).await;
        let b = h.artifacts.store_file(&path, None).await.unwrap();
        assert_eq!(a, b, "the same bytes are stored once");
        let r = h.run(flow, json!({"doc": b.to_value()})).await;
        assert_eq!(r.steps["use"].status, StepStatus::Cached);
        std::fs::write(&path, "two").unwrap();
        let c = h.artifacts.store_file(&path, None).await.unwrap();
        assert_ne!(a.sha256, c.sha256);
        let r = h.run(flow, json!({"doc": c.to_value()})).await;
        assert_eq!(r.steps["use"].status, StepStatus::Succeeded);
        assert_eq!(h.probe.calls("use"), 2);
        let stored = h.artifacts.locate(&c).await.unwrap();
        assert_eq!(std::fs::read_to_string(stored).unwrap(), "two");
    }

    async fn cancellation_stops_running_steps(h) {
        let ctl = RunControl::default();
        let cancel = ctl.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            cancel.cancel();
        });
        let r = h.run_with(r#"
steps:
  long: { uses: test.probe, with: { key: long, ms: 30000 } }
  next: { uses: test.probe, needs: [long], with: { key: next } }
"#, json!({}), EngineOptions::default(), ctl).await;
        assert_eq!(r.status, RunStatus::Cancelled);
        assert_eq!(r.steps["long"].status, StepStatus::Cancelled);
        assert_eq!(r.steps["next"].status, StepStatus::Cancelled);
        assert_eq!(h.probe.calls("next"), 0);
    }

    async fn resume_keeps_finished_steps(h) {
        // The first run fails at `flaky`; resuming runs only `flaky` and what follows it.
        let yaml = r#"
steps:
  done: { uses: test.probe, cache: false, with: { key: done, value: 7 } }
  flaky: { uses: test.probe, needs: [done], cache: false, with: { key: flaky, fail: 1, fatal: true } }
  last: { uses: test.probe, cache: false, with: { key: last, value: "${{ steps.flaky.outputs.call }}" } }
"#;
        let r = h.run(yaml, json!({})).await;
        assert_eq!(r.status, RunStatus::Failed);
        let r2 = h.resume(&r.run_id, RunControl::default()).await;
        assert_eq!(r2.run_id, r.run_id);
        assert_eq!(r2.status, RunStatus::Succeeded, "{r2:?}");
        assert_eq!(r2.resumed_count, 1);
        assert_eq!(h.probe.calls("done"), 1, "finished steps never run again");
        assert_eq!(h.probe.calls("flaky"), 2);
        assert_eq!(h.probe.calls("last"), 1);
        assert_eq!(r2.steps["last"].outputs["value"], json!(2));
    }

    async fn missing_and_mistyped_inputs_are_refused(h) {
        let plan = h.plan("inputs:\n  n: integer\nsteps:\n  a: { uses: test.probe }\n");
        let engine = h.engine(EngineOptions::default());
        let err = engine.run(plan.clone(), Default::default(), RunControl::default()).await.unwrap_err();
        assert_eq!(err.to_string(), "missing required input `n`: pass it with `--input n=VALUE`");
        let mut m = serde_json::Map::new();
        m.insert("n".into(), json!("seven"));
        let err = engine.run(plan.clone(), m, RunControl::default()).await.unwrap_err();
        assert_eq!(err.to_string(), "input `n` must be integer, got string");
        let mut m = serde_json::Map::new();
        m.insert("m".into(), json!(1));
        let err = engine.run(plan, m, RunControl::default()).await.unwrap_err();
        assert!(err.to_string().starts_with("unknown input `m`"));
    }

    async fn quoted_scalars_stay_strings(h) {
        // YAML 1.2: only plain scalars are typed; `""` is an empty string, not null.
        let r = h.run(r#"
steps:
  a: { uses: test.probe, with: { key: a, value: ["", "42", "true", 42, true, '', ~] } }
"#, json!({})).await;
        assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
        assert_eq!(r.steps["a"].outputs["value"], json!(["", "42", "true", 42, true, "", null]));
    }

    async fn runtime_config_errors_name_the_line(h) {
        let r = h.run(r#"
inputs:
  n: { type: any, default: "not a number" }
steps:
  a:
    uses: test.probe
    with: { key: a, ms: "${{ inputs.n }}" }
"#, json!({})).await;
        assert_eq!(r.status, RunStatus::Failed);
        let e = r.steps["a"].error.clone().unwrap();
        assert_eq!(e["code"], "invalid_config");
        assert!(e["help"].as_str().unwrap().contains("test.yaml:5"), "{e}");
    }

    async fn logs_and_runs_are_listed(h) {
        let r = h.run("name: listed\nsteps:\n  a: { uses: test.probe, with: { key: a } }\n", json!({})).await;
        let logs = h.store.logs(&r.run_id).await.unwrap();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].message, "call 1 of `a`");
        let runs = h.store.list_runs(&mediaflow_store::RunFilter {
            workflow: Some("listed".into()),
            status: Some(RunStatus::Succeeded),
            limit: None,
            ..Default::default()
        }).await.unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].id, r.run_id);
    }
}

#[tokio::test]
async fn an_unreachable_database_is_named_without_its_password() {
    let err = mediaflow_store::Store::connect("postgres://mf:hunter2@127.0.0.1:1/nowhere")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("postgres://mf:***@127.0.0.1:1/nowhere"),
        "{err}"
    );
    assert!(!err.contains("hunter2"));
}

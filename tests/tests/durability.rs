//! Claiming and fencing runs in the store, on SQLite and PostgreSQL: of two processes that
//! read an abandoned run and both try to take it over, exactly one wins, and the one that
//! lost (or an old owner that wakes up) can no longer write the run.

use mediaflow_store::{RunRecord, RunStatus, StepRecord, StepStatus, Store, StoreError};
use mediaflow_tests::on_both_backends;
use serde_json::json;

fn abandoned_run(id: &str) -> RunRecord {
    RunRecord {
        id: id.to_owned(),
        workflow_hash: "h".repeat(64),
        workflow_name: "crashy".to_owned(),
        status: RunStatus::Running,
        inputs: json!({}),
        options: json!({}),
        outputs: None,
        error: None,
        created_at: 1,
        finished_at: None,
        resumed_count: 0,
        owner: Some("gone-host:1".to_owned()),
        heartbeat_at: Some(1),
    }
}

fn step(run: &str, owner: &str) -> StepRecord {
    let mut s = StepRecord::new(run, "last", None, StepStatus::Succeeded);
    s.worker = Some(owner.to_owned());
    s
}

fn is_fenced<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Fenced { .. }))
}

on_both_backends! {
    async fn one_of_two_claims_wins_and_the_loser_is_fenced(h) {
        let store: &Store = &h.store;
        store
            .put_workflow(&"h".repeat(64), "crashy", None, "steps: {}")
            .await
            .unwrap();
        let run = abandoned_run("r1");
        store.create_run(&run).await.unwrap();
        // Both processes read the run before either claims it.
        let seen_a = store.get_run("r1").await.unwrap();
        let seen_b = store.get_run("r1").await.unwrap();
        let (a, b) = tokio::join!(store.claim_run(&seen_a, "a:1"), store.claim_run(&seen_b, "b:2"));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a ^ b, "exactly one claim wins (a: {a}, b: {b})");
        let (winner, loser) = if a { ("a:1", "b:2") } else { ("b:2", "a:1") };
        assert_eq!(store.get_run("r1").await.unwrap().owner.as_deref(), Some(winner));
        assert_eq!(store.get_run("r1").await.unwrap().resumed_count, 1);

        // The loser, and the old owner, cannot write the run any more.
        for stale in [loser, "gone-host:1"] {
            assert!(is_fenced(store.upsert_step(&step("r1", stale)).await), "{stale}");
            assert!(is_fenced(store.heartbeat("r1", stale).await), "{stale}");
            assert!(
                is_fenced(store.finish_run("r1", stale, RunStatus::Failed, None, None).await),
                "{stale}"
            );
        }
        assert!(store.steps("r1").await.unwrap().is_empty());
        assert_eq!(store.get_run("r1").await.unwrap().status, RunStatus::Running);

        // The winner writes as before.
        store.upsert_step(&step("r1", winner)).await.unwrap();
        store.heartbeat("r1", winner).await.unwrap();
        store.finish_run("r1", winner, RunStatus::Succeeded, Some(&json!({})), None).await.unwrap();
        assert_eq!(store.get_run("r1").await.unwrap().status, RunStatus::Succeeded);

        // A claim made from an outdated read (the run changed since) fails too.
        assert!(!store.claim_run(&seen_a, "c:3").await.unwrap());
    }
}

on_both_backends! {
    async fn an_owner_that_lost_its_run_stops_instead_of_running_on(h) {
        use mediaflow_engine::{EngineError, EngineOptions, RunControl};
        use mediaflow_store::RunFilter;
        use std::time::{Duration, Instant};
        let engine = h.engine(EngineOptions {
            heartbeat: Duration::from_millis(100),
            ..EngineOptions::default()
        });
        let plan = h.plan("steps:\n  long: { uses: core.delay, with: { duration: 60s } }\n");
        let store = h.store.clone();
        // Another process takes the run over while it runs (as a resume would, once this
        // process's heartbeat looked stale).
        let thief = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let Ok(runs) = store.list_runs(&RunFilter::default()).await else { continue };
                if let Some(run) = runs.into_iter().next() {
                    if store.claim_run(&run, "other-host:7").await.unwrap_or(false) {
                        return run.id;
                    }
                }
            }
        });
        let started = Instant::now();
        let ended = engine.run(plan, Default::default(), RunControl::default()).await;
        let run_id = thief.await.unwrap();
        assert!(
            matches!(ended, Err(EngineError::Store(StoreError::Fenced { .. }))),
            "{ended:?}"
        );
        // It stopped at its next heartbeat, not after the step's minute.
        assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
        let run = h.store.get_run(&run_id).await.unwrap();
        assert_eq!(run.owner.as_deref(), Some("other-host:7"));
        assert_eq!(run.status, RunStatus::Running, "the new owner's run, untouched");
    }
}

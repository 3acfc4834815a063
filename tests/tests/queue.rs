//! The work queue of distributed runs, on SQLite and on a real PostgreSQL: tasks go only to
//! workers that can run them, a lease that runs out puts the task back (counting an
//! attempt), a late result from the claim that lost its lease is refused (fencing), a task
//! out of attempts fails, and many claimers at once never take the same task twice.

use std::collections::HashMap;
use std::time::Duration;

use mediaflow_store::{now_ms, NewTask, Store, TaskState, WorkerInfo};
use mediaflow_tests::{Db, Harness};
use serde_json::json;

fn task(run: &str, step: &str, item: Option<usize>, plugin: &str, needs: &[&str]) -> NewTask {
    NewTask {
        id: format!("{run}/{step}/{item:?}"),
        run_id: run.into(),
        step_id: step.into(),
        item,
        plugin: plugin.into(),
        needs: needs.iter().map(|s| s.to_string()).collect(),
        payload: json!({ "with": { "n": item } }),
        max_attempts: 3,
    }
}

fn worker(id: &str, plugins: &[&str], caps: &[&str]) -> WorkerInfo {
    WorkerInfo {
        id: id.into(),
        host: "test".into(),
        plugins: plugins.iter().map(|s| s.to_string()).collect(),
        capabilities: caps.iter().map(|s| s.to_string()).collect(),
        concurrency: 1,
        running: 0,
        started_at: now_ms(),
        heartbeat_at: now_ms(),
    }
}

const LEASE: Duration = Duration::from_secs(30);

async fn routing_leases_and_fencing(db: Db) {
    let h = Harness::new(db).await;
    let s = &h.store;
    let asr = task(
        "r1",
        "transcribe",
        None,
        "audio.transcribe",
        &["model:whisper-base"],
    );
    assert!(s.enqueue_task(&asr).await.unwrap());
    // Queuing again is a no-op.
    assert!(!s.enqueue_task(&asr).await.unwrap());

    // A worker without the plugin, or without the model, gets nothing.
    let text_only = worker("w-text", &["text.template"], &[]);
    assert!(s.claim_task(&text_only, LEASE).await.unwrap().is_none());
    let no_model = worker("w-asr", &["audio.transcribe"], &["model:whisper-tiny.en"]);
    assert!(s.claim_task(&no_model, LEASE).await.unwrap().is_none());
    let first = worker("w1", &["audio.transcribe"], &["model:whisper-base"]);
    let claim1 = s
        .claim_task(&first, Duration::from_millis(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (claim1.state, claim1.attempts, claim1.worker.as_deref()),
        (TaskState::Running, 1, Some("w1"))
    );
    assert_eq!(claim1.payload, json!({ "with": { "n": null } }));
    assert!(
        s.claim_task(&first, LEASE).await.unwrap().is_none(),
        "claimed twice"
    );

    // w1 stalls past its lease: the task goes back and w2 claims it, a second attempt.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let back = s.requeue_expired(now_ms()).await.unwrap();
    assert_eq!(back.ready, vec![asr.id.clone()]);
    let second = worker(
        "w2",
        &["audio.transcribe"],
        &["model:whisper-base", "tag:gpu"],
    );
    let claim2 = s.claim_task(&second, LEASE).await.unwrap().unwrap();
    assert_eq!(claim2.attempts, 2);
    assert!(claim2.generation > claim1.generation);

    // w1 wakes up: it can neither renew nor complete with its old claim.
    assert!(!s
        .renew_task(&asr.id, claim1.generation, LEASE)
        .await
        .unwrap());
    let late = json!({ "outputs": { "text": "stale" } });
    assert!(!s
        .complete_task(&asr.id, claim1.generation, TaskState::Succeeded, &late)
        .await
        .unwrap());
    assert!(s
        .renew_task(&asr.id, claim2.generation, LEASE)
        .await
        .unwrap());
    let fresh = json!({ "outputs": { "text": "fresh" } });
    assert!(s
        .complete_task(&asr.id, claim2.generation, TaskState::Succeeded, &fresh)
        .await
        .unwrap());
    // Completing twice is refused too: the claim is no longer running.
    assert!(!s
        .complete_task(&asr.id, claim2.generation, TaskState::Failed, &late)
        .await
        .unwrap());
    let stored = s.task(&asr.id).await.unwrap().unwrap();
    assert_eq!(stored.state, TaskState::Succeeded);
    assert_eq!(stored.result, Some(fresh));
    assert_eq!(stored.worker.as_deref(), Some("w2"));

    // A task out of attempts fails instead of going back.
    let mut once = task("r1", "summarise", None, "llm.generate", &[]);
    once.max_attempts = 1;
    s.enqueue_task(&once).await.unwrap();
    let llm = worker("w3", &["llm.generate"], &[]);
    s.claim_task(&llm, Duration::from_millis(1))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let back = s.requeue_expired(now_ms()).await.unwrap();
    assert_eq!(back.failed, vec![once.id.clone()]);
    let failed = s.task(&once.id).await.unwrap().unwrap();
    assert_eq!(failed.state, TaskState::Failed);
    assert_eq!(failed.result.unwrap()["code"], "worker_lost");

    // Live workers, with what they can run.
    for w in [&first, &second] {
        s.worker_heartbeat(w).await.unwrap();
    }
    let live = s.live_workers(now_ms() - 60_000).await.unwrap();
    let ids: Vec<&str> = live.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, ["w1", "w2"]);
    assert_eq!(live[1].capabilities, ["model:whisper-base", "tag:gpu"]);
    s.remove_worker("w1").await.unwrap();
    assert_eq!(s.live_workers(0).await.unwrap().len(), 1);
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_leases_and_fencing_sqlite() {
    routing_leases_and_fencing(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_leases_and_fencing_postgres() {
    routing_leases_and_fencing(Db::Postgres).await;
}

/// Claims and completes until the queue is empty; returns the tasks it completed.
async fn drain(store: Store, me: WorkerInfo) -> Vec<String> {
    let mut done = Vec::new();
    while let Some(t) = store.claim_task(&me, LEASE).await.unwrap() {
        let accepted = store
            .complete_task(
                &t.id,
                t.generation,
                TaskState::Succeeded,
                &json!({ "by": me.id }),
            )
            .await
            .unwrap();
        assert!(accepted, "{} lost {}", me.id, t.id);
        done.push(t.id);
    }
    done
}

async fn many_claimers_never_share_a_task(db: Db) {
    let h = Harness::new(db).await;
    for i in 0..120 {
        h.store
            .enqueue_task(&task("r2", "fan", Some(i), "core.noop", &[]))
            .await
            .unwrap();
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut claimers = Vec::new();
    for w in 0..6 {
        // Each claimer on its own connection pool, as separate worker processes are.
        let store = Store::connect(&h.url).await.unwrap();
        let me = worker(&format!("w{w}"), &["core.noop"], &[]);
        claimers.push(tokio::spawn(drain(store, me)));
    }
    for c in claimers {
        for id in c.await.unwrap() {
            *counts.entry(id).or_default() += 1;
        }
    }
    assert_eq!(counts.len(), 120);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    let tasks = h.store.run_tasks("r2").await.unwrap();
    assert_eq!(tasks.len(), 120);
    assert!(tasks
        .iter()
        .all(|t| t.state == TaskState::Succeeded && t.attempts == 1));
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_claimers_never_share_a_task_sqlite() {
    many_claimers_never_share_a_task(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_claimers_never_share_a_task_postgres() {
    many_claimers_never_share_a_task(Db::Postgres).await;
}

/// Artifacts between data dirs that share only the database: published in chunks, fetched
/// and checked by sha256, and never read from the other data dir's files.
async fn artifacts_cross_data_dirs(db: Db) {
    let h = Harness::new(db).await;
    let coordinator = mediaflow_store::ArtifactStore::new(h.dir.path().join("a"), h.store.clone());
    let worker = mediaflow_store::ArtifactStore::new(h.dir.path().join("b"), h.store.clone());
    // Three chunks and a bit, not a multiple of the chunk size.
    let bytes: Vec<u8> = (0..(3 << 20) + 12_345u32)
        .map(|i| (i % 251) as u8)
        .collect();
    let a = coordinator
        .store_bytes(&bytes, "audio/wav", Some("take.wav"))
        .await
        .unwrap();
    // The index is shared, the file is not: the worker does not have it yet.
    assert!(worker.locate(&a).await.is_err());
    assert!(matches!(
        worker.fetch(&a).await,
        Err(mediaflow_store::StoreError::ArtifactNotFound(_))
    ));
    coordinator.publish(&a).await.unwrap();
    assert!(h.store.has_blob(&a.sha256).await.unwrap());
    coordinator.publish(&a).await.unwrap(); // again: nothing to do
    worker.fetch(&a).await.unwrap();
    let path = worker.locate(&a).await.unwrap();
    assert!(
        path.starts_with(h.dir.path().join("b")),
        "{}",
        path.display()
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    // An empty file is a blob of one empty chunk.
    let empty = coordinator
        .store_bytes(b"", "text/plain", None)
        .await
        .unwrap();
    coordinator.publish(&empty).await.unwrap();
    worker.fetch(&empty).await.unwrap();
    assert_eq!(
        std::fs::read(worker.locate(&empty).await.unwrap()).unwrap(),
        b""
    );
    // A reference whose bytes in the database do not match its sha256 is refused.
    let mut forged = a.clone();
    forged.sha256 = "ab".repeat(32);
    let third = mediaflow_store::ArtifactStore::new(h.dir.path().join("c"), h.store.clone());
    let pool = sqlx::AnyPool::connect(&h.url).await.unwrap();
    sqlx::query(
        "INSERT INTO artifact_blobs (sha256, size, chunks, created_at) VALUES ($1, 1, 1, 0)",
    )
    .bind(&forged.sha256)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO artifact_chunks (sha256, idx, data) VALUES ($1, 0, $2)")
        .bind(&forged.sha256)
        .bind(&b"x"[..])
        .execute(&pool)
        .await
        .unwrap();
    let err = third.fetch(&forged).await.unwrap_err().to_string();
    assert!(err.contains("has sha256"), "{err}");
    assert!(third.locate(&forged).await.is_err());
    h.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_cross_data_dirs_sqlite() {
    artifacts_cross_data_dirs(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_cross_data_dirs_postgres() {
    artifacts_cross_data_dirs(Db::Postgres).await;
}

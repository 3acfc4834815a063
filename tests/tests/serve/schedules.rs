//! Schedules with a clock the tests control: each pass is given its instant. Runs and
//! ticks are asserted from the database.

use std::path::Path;

use chrono::{DateTime, Utc};
use mediaflow_store::{RunFilter, RunStatus, Store};
use mediaflow_tests::on_both_backends;

use crate::common::service;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("an RFC 3339 time")
        .with_timezone(&Utc)
}

fn write(dir: &Path, name: &str, yaml: &str) {
    std::fs::write(dir.join(format!("{name}.yaml")), yaml).expect("write workflow");
}

async fn runs(store: &Store) -> Vec<mediaflow_store::RunRecord> {
    store
        .list_runs(&RunFilter {
            limit: Some(10_000),
            ..Default::default()
        })
        .await
        .expect("runs")
}

/// Ticks of schedule `index` of `workflow`, as `(tick, status, has a run)`.
async fn ticks(store: &Store, workflow: &str, index: i32) -> Vec<(DateTime<Utc>, String, bool)> {
    store
        .ticks(Some(workflow))
        .await
        .expect("ticks")
        .into_iter()
        .filter(|t| t.schedule == index)
        .map(|t| {
            (
                DateTime::from_timestamp_millis(t.tick).expect("tick"),
                t.status,
                t.run_id.is_some(),
            )
        })
        .collect()
}

/// Waits until no run is running (the quick runs the scheduler started end).
async fn settle(store: &Store) {
    for _ in 0..400 {
        if runs(store)
            .await
            .iter()
            .all(|r| r.status != RunStatus::Running)
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("runs did not finish");
}

const QUICK: &str = "  say:\n    uses: text.template\n    with: { template: 'tick' }\n";

on_both_backends! {
    async fn ticks_fire_at_their_instant_across_daylight_saving(h) {
        let dir = tempfile::tempdir().unwrap();
        // 01:30 London time every day: on 2027-03-28 the clocks skip from 01:00 to 02:00,
        // on 2027-10-31 they go back from 02:00 to 01:00 (01:30 happens twice).
        write(dir.path(), "brief", &format!("name: brief\nschedule: {{ cron: '30 1 * * *', timezone: Europe/London, concurrency: allow }}\nsteps:\n{QUICK}"));
        let s = service(h, h.store.clone(), dir.path());
        assert!(s.schedule_pass(at("2027-03-26T12:00:00Z")).await.iter().any(|l| l.contains("loaded")));
        s.schedule_pass(at("2027-03-27T01:29:59Z")).await;
        assert!(ticks(&h.store, "brief", 0).await.is_empty(), "fired early");
        s.schedule_pass(at("2027-03-27T01:30:00Z")).await; // GMT: 01:30 local = 01:30 UTC
        s.schedule_pass(at("2027-03-28T00:59:59Z")).await;
        assert_eq!(ticks(&h.store, "brief", 0).await.len(), 1);
        // 01:30 does not happen on the 28th: it fires at the first instant after the gap.
        s.schedule_pass(at("2027-03-28T01:00:00Z")).await;
        s.schedule_pass(at("2027-03-29T00:29:59Z")).await;
        s.schedule_pass(at("2027-03-29T00:30:00Z")).await; // BST: 01:30 local = 00:30 UTC
        // 01:30 happens twice on 31 October: once only, at the first.
        s.schedule_pass(at("2027-10-31T00:30:00Z")).await;
        s.schedule_pass(at("2027-10-31T01:30:00Z")).await;
        s.schedule_pass(at("2027-11-01T01:29:00Z")).await;
        s.schedule_pass(at("2027-11-01T01:30:00Z")).await;
        let got: Vec<DateTime<Utc>> = ticks(&h.store, "brief", 0).await.into_iter().map(|t| t.0).collect();
        // The pass at 2027-10-31T00:30 was more than a minute after the ticks between
        // 2027-03-30 and 2027-10-30: those were missed, and `catch_up: latest` ran the
        // latest of them (2027-10-30T00:30Z) at that pass.
        assert_eq!(got, vec![
            at("2027-03-27T01:30:00Z"),
            at("2027-03-28T01:00:00Z"),
            at("2027-03-29T00:30:00Z"),
            at("2027-10-30T00:30:00Z"),
            at("2027-10-31T00:30:00Z"),
            at("2027-11-01T01:30:00Z"),
        ]);
        settle(&h.store).await;
        let all = runs(&h.store).await;
        assert_eq!(all.len(), got.len());
        assert!(all.iter().all(|r| r.status == RunStatus::Succeeded && r.workflow_name == "brief"));
    }

    async fn missed_ticks_follow_catch_up(h) {
        let dir = tempfile::tempdir().unwrap();
        // `concurrency: allow`: the catch-up runs of one pass start together (under the
        // default `skip` the later ones would be skipped while the first runs).
        let yaml = format!("name: hourly\nschedule:\n  - {{ cron: '0 * * * *', catch_up: latest, concurrency: allow }}\n  - {{ cron: '0 * * * *', catch_up: all, concurrency: allow }}\n  - {{ cron: '0 * * * *', catch_up: none, concurrency: allow }}\nsteps:\n{QUICK}");
        write(dir.path(), "hourly", &yaml);
        let first = service(h, h.store.clone(), dir.path());
        first.schedule_pass(at("2027-01-04T08:30:00Z")).await;
        first.schedule_pass(at("2027-01-04T09:00:10Z")).await;
        for i in 0..3 {
            assert_eq!(ticks(&h.store, "hourly", i).await.len(), 1, "schedule {i}");
        }
        settle(&h.store).await;
        // The service is down from 09:00 to 13:20; a new one starts.
        let second = service(h, h.store.clone(), dir.path());
        second.schedule_pass(at("2027-01-04T13:20:00Z")).await;
        settle(&h.store).await;
        let hours = |v: Vec<(DateTime<Utc>, String, bool)>| v.into_iter().map(|t| t.0.format("%H").to_string()).collect::<Vec<_>>();
        assert_eq!(hours(ticks(&h.store, "hourly", 0).await), ["09", "13"]);
        assert_eq!(hours(ticks(&h.store, "hourly", 1).await), ["09", "10", "11", "12", "13"]);
        assert_eq!(hours(ticks(&h.store, "hourly", 2).await), ["09"]);
        // After the catch-up, on-time ticks fire for every policy.
        second.schedule_pass(at("2027-01-04T14:00:05Z")).await;
        settle(&h.store).await;
        for i in 0..3 {
            assert_eq!(ticks(&h.store, "hourly", i).await.last().unwrap().0, at("2027-01-04T14:00:00Z"));
        }
        assert_eq!(runs(&h.store).await.len(), 2 + 5 + 1 + 3);
    }

    async fn concurrency_skip_and_queue(h) {
        let dir = tempfile::tempdir().unwrap();
        let slow = "  wait:\n    uses: test.probe\n    with: { key: slow, ms: 600000 }\n";
        write(dir.path(), "skip", &format!("name: skip\nschedule: {{ cron: '* * * * *', concurrency: skip }}\nsteps:\n{slow}"));
        write(dir.path(), "queue", &format!("name: queue\nschedule: {{ cron: '* * * * *', concurrency: queue }}\nsteps:\n{slow}"));
        let s = service(h, h.store.clone(), dir.path());
        s.schedule_pass(at("2027-01-04T08:00:30Z")).await;
        s.schedule_pass(at("2027-01-04T08:01:00Z")).await;
        s.schedule_pass(at("2027-01-04T08:02:00Z")).await;
        s.schedule_pass(at("2027-01-04T08:03:00Z")).await;
        let status = |v: Vec<(DateTime<Utc>, String, bool)>| v.into_iter().map(|t| (t.1, t.2)).collect::<Vec<_>>();
        let started = ("started".to_owned(), true);
        assert_eq!(status(ticks(&h.store, "skip", 0).await), vec![started.clone(), ("skipped".into(), false), ("skipped".into(), false)]);
        assert_eq!(status(ticks(&h.store, "queue", 0).await), vec![started.clone(), ("queued".into(), false), ("queued".into(), false)]);
        assert_eq!(runs(&h.store).await.len(), 2);
        // The first runs end (cancelled); the next pass starts the oldest queued tick only.
        for r in runs(&h.store).await {
            assert!(s.cancel(&r.id));
        }
        settle(&h.store).await;
        s.schedule_pass(at("2027-01-04T08:03:10Z")).await;
        assert_eq!(status(ticks(&h.store, "queue", 0).await), vec![started.clone(), started.clone(), ("queued".into(), false)]);
        assert_eq!(status(ticks(&h.store, "skip", 0).await).len(), 3);
        assert_eq!(runs(&h.store).await.len(), 3);
        for r in runs(&h.store).await {
            s.cancel(&r.id);
        }
        settle(&h.store).await;
    }

    async fn two_services_on_one_database_fire_each_tick_once(h) {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "minutely", &format!("name: minutely\nschedule: {{ cron: '* * * * *', concurrency: allow }}\nsteps:\n{QUICK}"));
        // Two services, each with its own connection pool, as two processes would have.
        let other = Store::connect(&h.url).await.expect("second pool");
        let a = service(h, h.store.clone(), dir.path());
        let b = service(h, other.clone(), dir.path());
        let t0 = at("2027-01-04T08:00:30Z");
        tokio::join!(a.schedule_pass(t0), b.schedule_pass(t0));
        for k in 1..=20 {
            let t = t0 + chrono::Duration::seconds(60 * k - 30);
            tokio::join!(a.schedule_pass(t), b.schedule_pass(t));
        }
        settle(&h.store).await;
        let ticks = h.store.ticks(Some("minutely")).await.unwrap();
        assert_eq!(ticks.len(), 20);
        let mut run_ids: Vec<String> = ticks.iter().filter_map(|t| t.run_id.clone()).collect();
        run_ids.sort();
        run_ids.dedup();
        assert_eq!(run_ids.len(), 20, "one run per tick");
        assert_eq!(runs(&h.store).await.len(), 20);
        // Both services took part (each claims the ticks it gets to first).
        let by: std::collections::BTreeSet<&str> = ticks.iter().map(|t| t.fired_by.as_str()).collect();
        assert!(!by.is_empty());
        other.close().await;
    }

    async fn a_changed_workflow_is_reloaded_and_a_broken_one_keeps_its_last_good_version(h) {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "w", &format!("name: w\nschedule: {{ cron: '0 6 * * *', concurrency: allow }}\nsteps:\n{QUICK}"));
        let s = service(h, h.store.clone(), dir.path());
        s.schedule_pass(at("2027-01-04T05:00:00Z")).await;
        // Broken now: the error is logged, the 06:00 schedule still fires.
        std::thread::sleep(std::time::Duration::from_millis(20));
        write(dir.path(), "w", "name: w\nschedule: { cron: 'not a cron' }\nsteps:\n  say:\n    uses: text.template\n");
        let log = s.schedule_pass(at("2027-01-04T06:00:00Z")).await;
        assert!(log.iter().any(|l| l.contains("does not compile") && l.contains("last good version")), "{log:?}");
        assert_eq!(ticks(&h.store, "w", 0).await.len(), 1);
        // Fixed, with another time: the new schedule is the one that fires.
        std::thread::sleep(std::time::Duration::from_millis(20));
        write(dir.path(), "w", &format!("name: w\nschedule: {{ cron: '0 7 * * *', concurrency: allow }}\nsteps:\n{QUICK}   # v2\n"));
        let log = s.schedule_pass(at("2027-01-04T06:30:00Z")).await;
        assert!(log.iter().any(|l| l.contains("reloaded")), "{log:?}");
        s.schedule_pass(at("2027-01-04T07:00:00Z")).await;
        let got: Vec<DateTime<Utc>> = ticks(&h.store, "w", 0).await.into_iter().map(|t| t.0).collect();
        assert_eq!(got, vec![at("2027-01-04T06:00:00Z"), at("2027-01-04T07:00:00Z")]);
        settle(&h.store).await;
    }
}

#[test]
fn a_bad_schedule_is_a_compile_error_at_its_line() {
    let h_registry = mediaflow_builtin::registry();
    for (yaml, line, needle) in [
        ("name: x\nschedule: { cron: '61 * * * *' }\nsteps:\n  a: { uses: text.template, with: { template: x } }\n", 2, "not a cron expression"),
        ("name: x\nschedule:\n  - cron: '0 6 * * *'\n    timezone: Europe/Lundon\nsteps:\n  a: { uses: text.template, with: { template: x } }\n", 4, "unknown time zone `Europe/Lundon`"),
        ("name: x\nschedule: { cron: '0 6 * * *', catch_up: sometimes }\nsteps:\n  a: { uses: text.template, with: { template: x } }\n", 2, "catch_up: sometimes"),
        ("name: x\ninputs: { who: string }\nschedule: { cron: '0 6 * * *' }\nsteps:\n  a: { uses: text.template, with: { template: x } }\n", 3, "inputs do not fit"),
    ] {
        let d = mediaflow_workflow::compile_str("s.yaml", yaml, &h_registry).expect_err(yaml);
        let p = &d.problems[0];
        assert_eq!(p.line, line, "{}", d.render(false));
        assert!(p.message.contains(needle), "{}", d.render(false));
    }
    let d = mediaflow_workflow::compile_str("s.yaml", "name: x\nschedule: { cron: '0 6 * * *', timezone: Europe/Lundon }\nsteps:\n  a: { uses: text.template, with: { template: x } }\n", &h_registry).expect_err("bad tz");
    assert!(d.problems[0]
        .help
        .as_deref()
        .unwrap_or("")
        .contains("Europe/London"));
}

//! Shared capacity is shared fairly: run slots per tenant with a reserve for inline runs,
//! bounded waiting with a named refusal, replay shares and result retention per tenant, and
//! background jobs taken round-robin across tenants.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use stagecraft::config::Config;
use stagecraft_tests::{eventually, json, temp_dir, Server, ADMIN_KEY};

/// Binds the gatekeeper (an inline validator that sets `vetted`) on `leads` created.
async fn gatekeeper(s: &Server, key: &str) {
    s.upload_guest(key, "gatekeeper", "gatekeeper").await;
    s.bind(
        key,
        json!({"pipeline": "leads", "module": "gatekeeper", "version": 1, "mode": "inline",
            "triggers": [{"on": "created"}], "grants": {"fields": ["vetted"]}}),
    )
    .await;
}

/// Starts a dry-run of `spin` (runs until its deadline) for `key`'s tenant.
fn spin(s: &Arc<Server>, key: &str, record: &str) -> tokio::task::JoinHandle<StatusCode> {
    let (s, key, record) = (s.clone(), key.to_string(), record.to_string());
    tokio::spawn(async move {
        s.dry_run(&key, "spin", 1, json!({"record": record}))
            .await
            .status
    })
}

#[tokio::test]
async fn a_tenant_at_its_share_waits_a_bounded_time_then_is_refused_whole() {
    let dir = temp_dir();
    let mut config = Config::new(dir.path());
    config.limits.concurrent_runs = 8;
    config.limits.runs_per_tenant = Some(1);
    config.limits.slot_wait = Duration::from_millis(300);
    // The spinner is bounded by fuel (about 4 s of CPU here), not by a wall deadline: it
    // holds the slot through the checks below however slowly a loaded machine serves them.
    config.limits.timeout = Duration::from_secs(600);
    config.limits.fuel = 80_000_000_000;
    let s = Arc::new(Server::start_with(config).await);
    let other = s.tenant("globex").await;
    gatekeeper(&s, ADMIN_KEY).await;
    gatekeeper(&s, &other).await;
    s.upload_guest(ADMIN_KEY, "spin", "spin").await;
    let target = s
        .record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": "T", "email": "t@acme.test"}),
        )
        .await;

    // The tenant's one slot is held by a dry-run that spins until its deadline.
    let spinning = spin(&s, ADMIN_KEY, target["id"].as_str().unwrap());
    eventually(
        "the spinning dry-run holds the tenant's slot",
        400,
        || async { (s.state.sandbox.slots_in_use("default").1 == 1).then_some(()) },
    )
    .await;

    // Its inline create waits at most slot_wait, then is refused by name: nothing committed.
    let resp = s
        .request(Method::POST, "/v1/records")
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"kind": "lead", "name": "Refused", "email": "r@acme.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "1");
    let r = Server::read(resp).await;
    assert_eq!(r.code(), "busy", "{:?}", r.body);
    assert!(
        r.message().contains("nothing was changed"),
        "{}",
        r.message()
    );
    let list = s.get("/v1/records?limit=100", ADMIN_KEY).await;
    assert!(
        !list.body.to_string().contains("Refused"),
        "a refused change leaves nothing: {:?}",
        list.body
    );
    assert!(s.runs(ADMIN_KEY, "outcome=busy").await.is_empty());

    // A second dry-run is refused the same way.
    let r = s
        .dry_run(ADMIN_KEY, "spin", 1, json!({"record": target["id"]}))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert_eq!(r.code(), "busy");

    // Another tenant is not held up at all.
    let r = s
        .post(
            "/v1/records",
            &other,
            json!({"kind": "lead", "name": "Other", "email": "o@globex.test"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["custom"]["vetted"], true);

    // Once the spinner is done, the tenant's own create goes through again.
    assert_eq!(spinning.await.unwrap(), StatusCode::OK);
    let r = s
        .post(
            "/v1/records",
            ADMIN_KEY,
            json!({"kind": "lead", "name": "Later", "email": "l@acme.test"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

#[tokio::test]
async fn one_tenants_replays_neither_take_every_slot_nor_push_out_anothers_results() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let other = s.tenant("globex").await;
    let mut bindings = Vec::new();
    for key in [ADMIN_KEY, other.as_str()] {
        s.upload_guest(key, "effector", "effector").await;
        bindings.push(
            s.bind(
                key,
                json!({"pipeline": "leads", "module": "effector", "version": 1,
                    "triggers": [{"on": "created"}]}),
            )
            .await,
        );
    }
    let path = "/v1/modules/effector/versions/1/replay";
    // The other tenant's finished replay (of an empty window: tiny).
    let r = s
        .post(path, &other, json!({"binding": bindings[1], "last": 1}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "done");
    let theirs = r.body["id"].as_str().unwrap().to_string();
    // 101 tiny replays of one tenant: more than it may keep.
    for _ in 0..101 {
        let r = s
            .post(path, ADMIN_KEY, json!({"binding": bindings[0], "last": 1}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    let r = s.get(&format!("/v1/replays/{theirs}"), &other).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "done");
}

/// A tenant at its share of running replays is told to come back later, and when.
#[tokio::test]
async fn a_tenant_at_its_replay_share_gets_429_with_retry_after() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    s.upload_guest(ADMIN_KEY, "effector", "effector").await;
    let binding = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "effector", "version": 1,
                "triggers": [{"on": "created"}]}),
        )
        .await;
    // Two long replays of this tenant are running (held in the real registry).
    let _running: Vec<_> = (0..stagecraft::replay::RUNNING_PER_TENANT)
        .map(|_| {
            s.state
                .replays
                .add(stagecraft::replay::Replay {
                    id: stagecraft::model::id::new_id("rpl"),
                    tenant: "default".into(),
                    module: "effector".into(),
                    version: 1,
                    bindings: vec![binding.clone()],
                    status: stagecraft::replay::ReplayStatus::Running,
                    total: 5000,
                    done: 0,
                    summary: Default::default(),
                    differences: Vec::new(),
                    error: None,
                    created_at: chrono::Utc::now(),
                    finished_at: None,
                })
                .unwrap()
        })
        .collect();
    let resp = s
        .request(Method::POST, "/v1/modules/effector/versions/1/replay")
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"binding": binding, "last": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "replays_busy", "{body}");
}

/// Writes raw bytes under `key` in the data tree of a stopped server's store.
fn poke(db: &sled::Db, key: &str, value: &[u8]) {
    db.open_tree("data").unwrap().insert(key, value).unwrap();
}

/// Binds the effector (sets `processed`) in the background on `leads` created.
async fn effector(s: &Server, key: &str, config: serde_json::Value) -> String {
    s.upload_guest(key, "effector", "effector").await;
    s.bind(
        key,
        json!({"pipeline": "leads", "module": "effector", "version": 1,
            "triggers": [{"on": "created"}], "config": config,
            "grants": {"fields": ["processed"]}}),
    )
    .await
}

/// Waits until `record` was processed by a background run.
async fn processed(s: &Server, key: &str, record: &str, what: &str) {
    eventually(what, 1200, || async {
        let r = s.get(&format!("/v1/records/{record}"), key).await;
        (r.body["custom"]["processed"] == true).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_job_that_cannot_run_is_recorded_as_failed_and_blocks_no_one() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let other = s.tenant("globex").await;
    // A lead of the other tenant created before its binding: its event has no job yet.
    let early = s
        .record(&other, json!({"kind": "lead", "name": "Early"}))
        .await;
    let events = s
        .get(
            &format!("/v1/events?record={}", early["id"].as_str().unwrap()),
            &other,
        )
        .await;
    let early_event = events.body["events"][0]["id"].as_str().unwrap().to_string();
    let ours = effector(&s, ADMIN_KEY, json!({"field": "processed", "value": true})).await;
    let theirs = effector(&s, &other, json!({"field": "processed", "value": true})).await;
    let dir = s.stop().await;

    // Written as an earlier version queued them (one queue, `job/{id}`), plus two poisons:
    // a job whose event cannot be read, and a job that cannot be read at all.
    let poisoned_event = stagecraft::model::id::new_id("evt");
    let unreadable_job = stagecraft::model::id::new_id("job");
    {
        let db = stagecraft_tests::open_stopped_db(&dir.join("db")).await;
        poke(
            &db,
            &format!("evt/default/{poisoned_event}"),
            b"{\"id\": [[[",
        );
        for (tenant, event, binding) in [
            ("default", poisoned_event.as_str(), ours.as_str()),
            ("globex", early_event.as_str(), theirs.as_str()),
        ] {
            let id = stagecraft::model::id::new_id("job");
            let job = json!({"id": id, "tenant": tenant, "event": event, "binding": binding});
            poke(&db, &format!("job/{id}"), job.to_string().as_bytes());
        }
        poke(
            &db,
            &format!("job/default/{unreadable_job}"),
            b"\x00garbage",
        );
        db.flush().unwrap();
    }
    let s = Server::start(&dir).await;

    // The legacy job of the other tenant runs, and so do new jobs of both tenants.
    processed(
        &s,
        &other,
        early["id"].as_str().unwrap(),
        "the legacy job runs",
    )
    .await;
    let later = s
        .record(&other, json!({"kind": "lead", "name": "Later"}))
        .await;
    processed(
        &s,
        &other,
        later["id"].as_str().unwrap(),
        "the other tenant's job runs",
    )
    .await;
    let mine = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Mine"}))
        .await;
    processed(
        &s,
        ADMIN_KEY,
        mine["id"].as_str().unwrap(),
        "our next job runs",
    )
    .await;

    // Both poisons are failed runs that say why, and the queue is empty.
    let failed = s.runs(ADMIN_KEY, "outcome=trap").await;
    let about_event = failed
        .iter()
        .find(|r| r["event"] == poisoned_event.as_str())
        .unwrap_or_else(|| panic!("no failed run for the poisoned event: {failed:?}"));
    assert_eq!(about_event["binding"], ours.as_str());
    assert_eq!(about_event["module"], "effector");
    let message = about_event["outcome"]["message"].as_str().unwrap();
    assert!(message.contains("corrupt"), "{message}");
    assert!(
        failed.iter().any(|r| r["outcome"]["message"]
            .as_str()
            .unwrap()
            .contains("the queued job cannot be read")),
        "{failed:?}"
    );
    eventually("the queue is empty", 400, || async {
        (s.state.store.queued_jobs().unwrap() == 0).then_some(())
    })
    .await;
}

/// A job's journal event is never deleted, so a job whose event is missing lost its work:
/// that is a failed run naming the event, never an `ok` or nothing. A job whose binding was
/// deleted or disabled since is skipped without a run.
#[tokio::test]
async fn a_job_whose_event_is_missing_is_a_failed_run_not_nothing() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let live = effector(&s, ADMIN_KEY, json!({"field": "processed", "value": true})).await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Seen"}))
        .await;
    processed(
        &s,
        ADMIN_KEY,
        lead["id"].as_str().unwrap(),
        "the binding runs",
    )
    .await;
    let events = s
        .get(
            &format!("/v1/events?record={}", lead["id"].as_str().unwrap()),
            ADMIN_KEY,
        )
        .await;
    let real_event = events.body["events"][0]["id"].as_str().unwrap().to_string();
    let runs_before = s.runs(ADMIN_KEY, "limit=100").await.len();
    let dir = s.stop().await;

    let missing_event = stagecraft::model::id::new_id("evt");
    {
        let db = stagecraft_tests::open_stopped_db(&dir.join("db")).await;
        for (event, binding) in [
            (missing_event.as_str(), live.as_str()),
            // The binding is gone: skipped, no run.
            (real_event.as_str(), "bnd_01JDELETEDDELETEDDELETED0"),
        ] {
            let id = stagecraft::model::id::new_id("job");
            let job = json!({"id": id, "tenant": "default", "event": event, "binding": binding});
            poke(
                &db,
                &format!("job/default/{id}"),
                job.to_string().as_bytes(),
            );
        }
        db.flush().unwrap();
    }
    let s = Server::start(&dir).await;
    eventually("the queue is empty", 400, || async {
        (s.state.store.queued_jobs().unwrap() == 0).then_some(())
    })
    .await;

    let failed = s.runs(ADMIN_KEY, "outcome=trap").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    let run = &failed[0];
    assert_eq!(run["event"], missing_event.as_str());
    assert_eq!(run["binding"], live.as_str());
    assert_eq!(run["module"], "effector");
    let message = run["outcome"]["message"].as_str().unwrap();
    assert!(
        message.contains(&missing_event) && message.contains("missing"),
        "{message}"
    );
    // The deleted binding's job left no run: only the failure was added.
    assert_eq!(s.runs(ADMIN_KEY, "limit=100").await.len(), runs_before + 1);
}

#[tokio::test]
async fn one_tenants_backlog_does_not_delay_another_tenants_job() {
    const BACKLOG: usize = 500;
    let dir = temp_dir();
    let mut config = Config::new(dir.path());
    // Each of the backlog's runs spins until this deadline.
    config.limits.timeout = Duration::from_millis(1000);
    config.limits.fuel = u64::MAX / 2;
    let s = Server::start_with(config.clone()).await;
    let other = s.tenant("globex").await;
    s.upload_guest(ADMIN_KEY, "spin", "spin").await;
    let slow = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "spin", "version": 1,
                "triggers": [{"on": "created"}]}),
        )
        .await;
    effector(&s, &other, json!({"field": "processed", "value": true})).await;
    // One real event of ours, to copy.
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Template"}))
        .await;
    let events = s
        .get(
            &format!("/v1/events?record={}", lead["id"].as_str().unwrap()),
            ADMIN_KEY,
        )
        .await;
    let template = events.body["events"][0].clone();
    let dir = s.stop().await;
    {
        // The backlog: 500 events of ours, each with a queued job for the spinning binding.
        let db = stagecraft_tests::open_stopped_db(&dir.join("db")).await;
        for _ in 0..BACKLOG {
            let mut event = template.clone();
            let id = stagecraft::model::id::new_id("evt");
            event["id"] = json!(id);
            poke(
                &db,
                &format!("evt/default/{id}"),
                event.to_string().as_bytes(),
            );
            let job_id = stagecraft::model::id::new_id("job");
            let job = json!({"id": job_id, "tenant": "default", "event": id, "binding": slow});
            poke(
                &db,
                &format!("job/default/{job_id}"),
                job.to_string().as_bytes(),
            );
        }
        db.flush().unwrap();
    }
    let s = Server::start_with(Config {
        data_dir: dir.clone(),
        ..config
    })
    .await;
    eventually("the backlog is being worked on", 400, || async {
        (s.state.sandbox.slots_in_use("default").1 > 0).then_some(())
    })
    .await;

    // The other tenant's one background job runs next to the backlog, not after it (which
    // would take 500 × 1 s / 2 lanes).
    let started = Instant::now();
    let theirs = s
        .record(&other, json!({"kind": "lead", "name": "Next"}))
        .await;
    processed(
        &s,
        &other,
        theirs["id"].as_str().unwrap(),
        "the other tenant's job runs",
    )
    .await;
    let took = started.elapsed();
    eprintln!("the other tenant's background job ran {took:?} after its change, behind a backlog of {BACKLOG}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(
        s.state.store.queued_jobs().unwrap() > BACKLOG / 2,
        "the backlog is still there: the job did not wait for it"
    );
}

/// The scenario: one tenant saturates everything it may at once — concurrent
/// dry-runs of a module that spins until its deadline (more than there are slots), the
/// replays it may run, a flood of background jobs — and another tenant's inline create
/// (with an inline binding) still answers within its normal latency.
#[tokio::test]
async fn a_saturating_tenant_does_not_slow_another_tenants_inline_create() {
    const BOUND: Duration = Duration::from_secs(2);
    let dir = temp_dir();
    let mut config = Config::new(dir.path());
    config.limits.timeout = Duration::from_secs(4);
    config.limits.fuel = u64::MAX / 2;
    let slots = config.limits.slot_policy();
    let s = Arc::new(Server::start_with(config).await);
    let other = s.tenant("globex").await;
    gatekeeper(&s, &other).await;

    // Our tenant: a quick background binding with a few past runs (for replays), then the
    // spinning module bound in the background too.
    let quick = effector(&s, ADMIN_KEY, json!({"field": "processed", "value": true})).await;
    for i in 0..3 {
        let r = s
            .record(
                ADMIN_KEY,
                json!({"kind": "lead", "name": format!("past {i}")}),
            )
            .await;
        processed(&s, ADMIN_KEY, r["id"].as_str().unwrap(), "a past run").await;
    }
    s.upload_guest(ADMIN_KEY, "spin", "spin").await;
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "spin", "version": 1,
            "triggers": [{"on": "created"}]}),
    )
    .await;
    let target = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "target"}))
        .await;
    let target = target["id"].as_str().unwrap().to_string();
    // The flood of background jobs.
    for i in 0..40 {
        s.record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": format!("flood {i}")}),
        )
        .await;
    }
    // The replays it may run (each replays the spinner on 3 past runs).
    let mut replays = Vec::new();
    for _ in 0..2 {
        let s = s.clone();
        let quick = quick.clone();
        replays.push(tokio::spawn(async move {
            s.post(
                "/v1/modules/spin/versions/1/replay",
                ADMIN_KEY,
                json!({"binding": quick, "last": 3}),
            )
            .await
            .status
        }));
    }
    // More concurrent dry-runs than there are slots in all.
    let dry_runs: Vec<_> = (0..slots.total + 8)
        .map(|_| spin(&s, ADMIN_KEY, &target))
        .collect();
    eventually("our tenant holds all the slots it may", 600, || async {
        (s.state.sandbox.slots_in_use("default").1 == slots.per_tenant).then_some(())
    })
    .await;

    let mut worst = Duration::ZERO;
    for i in 0..5 {
        let started = Instant::now();
        let r = s
            .post(
                "/v1/records",
                &other,
                json!({"kind": "lead", "name": format!("B {i}"), "email": format!("b{i}@globex.test")}),
            )
            .await;
        let took = started.elapsed();
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        assert_eq!(r.body["custom"]["vetted"], true, "the inline binding ran");
        worst = worst.max(took);
    }
    eprintln!(
        "the other tenant's inline create took at most {worst:?} while ours held {:?} of {} slots",
        s.state.sandbox.slots_in_use("default"),
        slots.total
    );
    assert!(worst < BOUND, "an inline create took {worst:?}");
    assert_eq!(
        s.state.sandbox.slots_in_use("default").1,
        slots.per_tenant,
        "our tenant was still saturating while we measured"
    );
    for d in dry_runs {
        d.abort();
    }
    for r in replays {
        r.abort();
    }
}

/// A flood of one tenant's inline changes, each waiting for a run slot, holds only that
/// tenant's share of the blocking threads (the automation pool), so another tenant's change
/// still gets a thread at once. The runtime's blocking pool is made small so that, without
/// the pool, the flood would take every blocking thread.
#[test]
fn a_flood_of_inline_changes_holds_only_its_share_of_blocking_threads() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(48)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = temp_dir();
        let mut config = Config::new(dir.path());
        config.limits.concurrent_runs = 8;
        config.limits.runs_per_tenant = Some(2);
        config.limits.slot_wait = Duration::from_secs(4);
        config.limits.timeout = Duration::from_secs(3);
        config.limits.fuel = u64::MAX / 2;
        let s = Arc::new(Server::start_with(config).await);
        let other = s.tenant("globex").await;
        gatekeeper(&s, &other).await;
        s.upload_guest(ADMIN_KEY, "spin", "spin").await;
        s.bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "spin", "version": 1, "mode": "inline",
                "triggers": [{"on": "created"}]}),
        )
        .await;

        let flood: Vec<_> = (0..80)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.request(Method::POST, "/v1/records")
                        .bearer_auth(ADMIN_KEY)
                        .json(&json!({"kind": "lead", "name": format!("Flood {i}")}))
                        .send()
                        .await
                        .map(|r| r.status())
                })
            })
            .collect();
        eventually("the flood holds its run slots", 400, || async {
            (s.state.sandbox.slots_in_use("default").1 == 2).then_some(())
        })
        .await;

        let started = Instant::now();
        let r = s
            .post(
                "/v1/records",
                &other,
                json!({"kind": "lead", "name": "Other", "email": "o@globex.test"}),
            )
            .await;
        let took = started.elapsed();
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        assert_eq!(r.body["custom"]["vetted"], true);
        println!("the other tenant's inline create during the flood took {took:?}");
        assert!(
            took < Duration::from_millis(1500),
            "the other tenant waited {took:?} behind the flood"
        );

        // The flood itself ends by name: runs that timed out rejected their change, the rest
        // were refused busy; nothing hangs.
        for f in flood {
            let status = f.await.unwrap().unwrap();
            assert!(
                status == StatusCode::UNPROCESSABLE_ENTITY
                    || status == StatusCode::SERVICE_UNAVAILABLE,
                "{status}"
            );
        }
    });
}

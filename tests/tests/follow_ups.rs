//! Automation is never silently skipped, and timers cannot snowball (issue 16): follow-ups
//! are bounded per run, per binding and record and per tenant, counted exactly; their events
//! and runs get time-ordered ids that still reproduce; retention goes by time and passes over
//! what it cannot read; a run whose event lost its record ends `event_pruned`; data older
//! versions left behind reads back. The hostile kind "timer snowball" runs here.

#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::Value;
use stagecraft::config::Config;
use stagecraft_tests::{eventually, json, temp_dir, Server, ADMIN_KEY};

/// A value nested `levels` deep: `[[…[0]…]]`.
fn nested(levels: usize) -> Value {
    let mut v = json!(0);
    for _ in 0..levels {
        v = Value::Array(vec![v]);
    }
    v
}

fn outcome(v: &Value) -> &str {
    v["outcome"]["kind"].as_str().unwrap_or_default()
}

async fn bomb(s: &Server) {
    s.upload_guest(ADMIN_KEY, "bomb", "data-bomb").await;
}

fn time_of(id: &str) -> Option<i64> {
    stagecraft::model::id::time_of(id)
}

fn millis(v: &Value) -> i64 {
    v.as_str()
        .unwrap()
        .parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap()
        .timestamp_millis()
}

#[tokio::test]
async fn hostile_timer_snowball_is_bounded_and_named() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    bomb(&s).await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Target"}))
        .await;
    let id = lead["id"].as_str().unwrap().to_string();

    // One run may schedule 25 follow-ups.
    let r = s
        .dry_run(
            ADMIN_KEY,
            "bomb",
            1,
            json!({"record": id, "config": {"attack": "snowball", "count": 300}}),
        )
        .await;
    assert_eq!(outcome(&r.body), "timer_limit", "{}", r.body["outcome"]);
    assert!(r.body["outcome"]["message"]
        .as_str()
        .unwrap()
        .contains("more than 25 follow-ups in one run"));
    assert_eq!(r.body["effects"].as_array().unwrap().len(), 25);

    // Every follow-up schedules 20 more: the binding's pending follow-ups on the record stop
    // at 100, and the run that would pass them ends timer_limit.
    let b = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "bomb", "version": 1, "mode": "background",
                "triggers": [{"on": "created"}],
                "config": {"attack": "snowball", "count": 20, "after": 5}}),
        )
        .await;
    let target = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Snowball"}))
        .await;
    let target = target["id"].as_str().unwrap().to_string();
    let store = s.state.store.clone();
    let limited = eventually("a run ends timer_limit", 1200, || async {
        let (pair, all) = store.pending_follow_ups("default", &b, &target).unwrap();
        assert!(pair <= 100 && all <= 100, "{pair} / {all} pending");
        assert!(store.timers("default").unwrap().len() <= 100);
        s.runs(ADMIN_KEY, &format!("record={target}&outcome=timer_limit"))
            .await
            .into_iter()
            .next()
    })
    .await;
    let message = limited["outcome"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("pending on record {target}; the limit is 100")),
        "{message}"
    );
    assert!(limited["effects"].as_array().unwrap().is_empty());
    assert_eq!(s.get("/healthz", ADMIN_KEY).await.status, StatusCode::OK);
    // Disabled, it stops; every follow-up fires and is counted out exactly.
    let r = s
        .patch(
            &format!("/v1/bindings/{b}"),
            ADMIN_KEY,
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    eventually("the last follow-ups fire", 1200, || async {
        let pending = store.pending_follow_ups("default", &b, &target).unwrap();
        (store.timers("default").unwrap().is_empty() && pending == (0, 0)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn follow_ups_are_capped_per_binding_and_record_and_per_tenant() {
    let dir = temp_dir();
    let mut config = Config::new(dir.path());
    config.automation.follow_ups_per_tenant = 140;
    let s = Server::start_with(config).await;
    bomb(&s).await;
    let b = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "bomb", "version": 1, "mode": "background",
                "triggers": [{"on": "updated"}],
                "config": {"attack": "snowball", "count": 25, "after": 3600}}),
        )
        .await;
    let mut leads = Vec::new();
    for name in ["One", "Two"] {
        let r = s
            .record(ADMIN_KEY, json!({"kind": "lead", "name": name}))
            .await;
        leads.push(r["id"].as_str().unwrap().to_string());
    }
    let touch = |id: String, n: usize| {
        let s = &s;
        async move {
            let path = format!("/v1/records/{id}");
            let r = s.patch(&path, ADMIN_KEY, json!({"custom": {"n": n}})).await;
            assert_eq!(r.status, StatusCode::OK);
            eventually("the run", 1200, || async {
                let runs = s.runs(ADMIN_KEY, &format!("record={id}")).await;
                (runs.len() == n).then(|| runs[0].clone())
            })
            .await
        }
    };
    // 4 runs of 25 on the first lead fit; the fifth would pass 100.
    for n in 1..=4 {
        assert_eq!(outcome(&touch(leads[0].clone(), n).await), "ok");
    }
    let fifth = touch(leads[0].clone(), 5).await;
    assert_eq!(outcome(&fifth), "timer_limit", "{fifth}");
    assert!(fifth["outcome"]["message"]
        .as_str()
        .unwrap()
        .contains("would have 125 follow-ups pending"));
    // The tenant holds 140: the second lead's second run would make it 150.
    assert_eq!(outcome(&touch(leads[1].clone(), 1).await), "ok");
    let second = touch(leads[1].clone(), 2).await;
    assert_eq!(outcome(&second), "timer_limit", "{second}");
    assert!(second["outcome"]["message"]
        .as_str()
        .unwrap()
        .contains("the tenant would have 150 follow-ups pending; the limit is 140"));
    let store = &s.state.store;
    assert_eq!(store.timers("default").unwrap().len(), 125);
    assert_eq!(
        store.pending_follow_ups("default", &b, &leads[0]).unwrap(),
        (100, 125)
    );
    // Cancellations count out in the same transaction: deleting the record frees its 100.
    let r = s
        .delete(&format!("/v1/records/{}", leads[0]), ADMIN_KEY)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        store.pending_follow_ups("default", &b, &leads[0]).unwrap(),
        (0, 25)
    );
    assert_eq!(outcome(&touch(leads[1].clone(), 3).await), "ok");
}

#[tokio::test]
async fn follow_ups_get_time_ordered_ids_keep_their_snapshot_and_never_run_blind() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    s.upload_guest(ADMIN_KEY, "follower", "follower").await;
    let b = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "follower", "version": 1, "mode": "background",
                "triggers": [{"on": "created"}], "config": {"after": 1},
                "grants": {"fields": ["followed_up"], "channels": ["email"]}}),
        )
        .await;
    let mut leads = Vec::new();
    for i in 0..40 {
        let r = s
            .record(ADMIN_KEY, json!({"kind": "lead", "name": format!("L{i}")}))
            .await;
        leads.push(r["id"].as_str().unwrap().to_string());
    }
    eventually("every follow-up ran", 2400, || async {
        let runs = s
            .runs(ADMIN_KEY, &format!("binding={b}&outcome=ok&limit=200"))
            .await;
        (runs.len() == 80).then_some(())
    })
    .await;

    // A follow-up's event takes its timer's id: a ULID of when it came due, derived from
    // the run that scheduled it; its run's id sorts by that time too.
    let mut first = i64::MAX;
    for id in &leads {
        let r = s.get(&format!("/v1/events?record={id}"), ADMIN_KEY).await;
        let events = r.body["events"].as_array().unwrap().clone();
        first = first.min(millis(&events[0]["occurred_at"]));
        let scheduled = events.iter().find(|e| e["type"] == "scheduled").unwrap();
        let eid = scheduled["id"].as_str().unwrap();
        assert_eq!(
            time_of(eid),
            Some(millis(&scheduled["occurred_at"])),
            "{eid}"
        );
        let runs = s.runs(ADMIN_KEY, &format!("record={id}")).await;
        let created_run = runs.iter().find(|r| r["event_kind"] == "created").unwrap();
        let timer = created_run["effects"][0]["id"].as_str().unwrap();
        assert_eq!(&timer[4..], &eid[4..], "{timer} → {eid}");
        let follow_run = runs
            .iter()
            .find(|r| r["event_kind"] == "scheduled")
            .unwrap();
        assert_eq!(follow_run["event"], eid);
        assert_eq!(time_of(follow_run["id"].as_str().unwrap()), time_of(eid));
    }
    // The history lists newest first by those ids: follow-ups after what scheduled them.
    let runs = s.runs(ADMIN_KEY, &format!("binding={b}&limit=200")).await;
    let times: Vec<i64> = runs
        .iter()
        .map(|r| time_of(r["id"].as_str().unwrap()).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    // Retention with a cutoff before all of it strips nothing (hex ids sorted below it).
    let store = s.state.store.clone();
    let cutoff = chrono::DateTime::from_timestamp_millis(first - 1).unwrap();
    let pruned = tokio::task::spawn_blocking(move || store.prune(cutoff, 7))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pruned, stagecraft::store::Pruned::default());
    for id in &leads {
        let r = s.get(&format!("/v1/events?record={id}"), ADMIN_KEY).await;
        for e in r.body["events"].as_array().unwrap() {
            assert!(!e["snapshot"].is_null(), "{e}");
        }
    }

    // An event that lost its snapshot to retention before its (delayed) run: the run ends
    // event_pruned and the module never runs blind; a dry run on it says the same.
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "follower", "version": 1, "mode": "background",
            "triggers": [{"on": "created", "delay_seconds": 4}], "config": {"after": 1},
            "grants": {"fields": ["followed_up"], "channels": ["email"]}}),
    )
    .await;
    let late = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Late"}))
        .await;
    let late = late["id"].as_str().unwrap().to_string();
    let store = s.state.store.clone();
    let cutoff = chrono::Utc::now() + chrono::Duration::hours(1);
    tokio::task::spawn_blocking(move || store.prune(cutoff, 64))
        .await
        .unwrap()
        .unwrap();
    let run = eventually("the delayed run", 1200, || async {
        s.runs(ADMIN_KEY, &format!("record={late}&outcome=event_pruned"))
            .await
            .into_iter()
            .next()
    })
    .await;
    assert!(
        run["outcome"]["message"]
            .as_str()
            .unwrap()
            .contains("lost its record snapshot to retention"),
        "{run}"
    );
    assert!(run["host_calls"].as_array().unwrap().is_empty());
    let r = s
        .dry_run(ADMIN_KEY, "follower", 1, json!({"event": run["event"]}))
        .await;
    assert_eq!(outcome(&r.body), "event_pruned", "{:?}", r.body);
}

#[tokio::test]
async fn data_from_older_versions_reads_back_and_retention_skips_what_it_cannot_read() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    s.upload_guest(ADMIN_KEY, "follower", "follower").await;
    // Runs only on the follow-up planted below.
    let b = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "follower", "version": 1, "mode": "background",
                "triggers": [{"on": "inbound", "name": "never"}],
                "grants": {"fields": ["followed_up"], "channels": ["email"]}}),
        )
        .await;
    let deep = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Deep"}))
        .await;
    let deep = deep["id"].as_str().unwrap().to_string();
    let plain = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Plain"}))
        .await;
    let plain = plain["id"].as_str().unwrap().to_string();
    let r = s.get(&format!("/v1/events?record={deep}"), ADMIN_KEY).await;
    let created = r.body["events"][0]["id"].as_str().unwrap().to_string();
    let dir = s.stop().await;

    // What an older version could leave on disk.
    let due = chrono::Utc::now();
    {
        let db = stagecraft_tests::open_stopped_db(&dir.join("db")).await;
        let data = db.open_tree("data").unwrap();
        let rewrite = |key: String, edit: &dyn Fn(&mut Value)| {
            let stored = data.get(&key).unwrap().unwrap();
            let mut v = stagecraft::store::stored_as_v1_json(&key, &stored).unwrap();
            edit(&mut v);
            data.insert(key, serde_json::to_vec(&v).unwrap()).unwrap();
        };
        // A custom field 127 levels deep (fields.set took it), in the record and its event.
        rewrite(format!("rec/default/{deep}"), &|r| {
            r["custom"]["deep"] = nested(127)
        });
        rewrite(format!("evt/default/{created}"), &|e| {
            e["snapshot"]["custom"]["deep"] = nested(127)
        });
        // A follow-up named the old way (24 hex characters), due now.
        let timer = stagecraft::model::Timer {
            id: "tmr_00aa11bb22cc33dd44ee55ff".into(),
            due,
            binding: b.clone(),
            record: plain.clone(),
            stage: None,
            kind: stagecraft::model::TimerKind::FollowUp {
                payload: json!({"step": 7}),
            },
            depth: 0,
        };
        let key = format!("timer/{:016}/default/{}", due.timestamp_millis(), timer.id);
        data.insert(key.as_bytes(), serde_json::to_vec(&timer).unwrap())
            .unwrap();
        data.insert(
            format!("rtim/default/{plain}"),
            serde_json::to_vec(&vec![key]).unwrap(),
        )
        .unwrap();
        // Values nobody can read, where retention looks.
        data.insert(
            "run/default/run_0000000000000000000000000a_0",
            &b"{\"id\": "[..],
        )
        .unwrap();
        data.insert(
            "evt/default/evt_0000000000000000000000000a",
            &b"not json"[..],
        )
        .unwrap();
        db.flush().unwrap();
    }
    let s = Server::start(&dir).await;

    // The deep record and its events read back. (In a response they nest deeper than
    // serde_json parses, so look at the text.)
    for path in [
        format!("/v1/records/{deep}"),
        format!("/v1/events?record={deep}"),
    ] {
        let r = s
            .request(reqwest::Method::GET, &path)
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let text = r.text().await.unwrap();
        assert!(
            text.contains(&format!("\"deep\":{}0", "[".repeat(127))),
            "{path}: {text}"
        );
    }

    // The old follow-up fires as a time-ordered event of its due time, and runs.
    eventually("the old follow-up runs", 1200, || async {
        let r = s.get(&format!("/v1/records/{plain}"), ADMIN_KEY).await;
        (r.body["custom"]["followed_up"] == 7).then_some(())
    })
    .await;
    // (limit=1: the page ends before the unreadable run planted above.)
    let run = s.runs(ADMIN_KEY, &format!("binding={b}&limit=1")).await[0].clone();
    assert_eq!(outcome(&run), "ok", "{run}");
    assert_eq!(
        time_of(run["event"].as_str().unwrap()),
        Some(due.timestamp_millis())
    );
    assert_eq!(
        s.state
            .store
            .pending_follow_ups("default", &b, &plain)
            .unwrap(),
        (0, 0)
    );

    // Retention passes over what it cannot read, says so, and does the rest.
    let store = s.state.store.clone();
    let cutoff = chrono::Utc::now() + chrono::Duration::hours(1);
    let pruned = tokio::task::spawn_blocking(move || store.prune(cutoff, 16))
        .await
        .unwrap()
        .unwrap();
    // (The pass at start-up already reported the event, and its mark moved past it.)
    assert!(pruned.unreadable >= 1, "{pruned:?}");
    assert!(pruned.runs >= 1 && pruned.snapshots >= 4, "{pruned:?}");
    // And the record takes writes again: the old field can go.
    let r = s
        .patch(
            &format!("/v1/records/{deep}"),
            ADMIN_KEY,
            json!({"custom": {"deep": null}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

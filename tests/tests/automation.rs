//! Automation end to end: real modules built from source, bound to pipelines over HTTP,
//! triggered by real changes; effects checked through the API.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use reqwest::StatusCode;
use stagecraft::config::Config;
use stagecraft_tests::{eventually, json, temp_dir, Server, ADMIN_KEY};

async fn record(s: &Server, id: &str) -> serde_json::Value {
    s.get(&format!("/v1/records/{id}"), ADMIN_KEY).await.body
}

#[tokio::test]
async fn inline_bindings_accept_or_reject_the_change() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    s.upload_guest(ADMIN_KEY, "gatekeeper", "gatekeeper").await;
    let b = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "gatekeeper", "version": 1, "mode": "inline",
            "triggers": [{"on": "created"}], "grants": {"fields": ["vetted"]}}),
        )
        .await;

    // Accepted: the response already shows the record after automation.
    let ok = s
        .post(
            "/v1/records",
            ADMIN_KEY,
            json!({"kind": "lead", "name": "Ada", "email": "ada@acme.io"}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{:?}", ok.body);
    assert_eq!(ok.body["custom"]["vetted"], true);
    assert_eq!(ok.body["version"], 2);

    // Rejected: 422 with the module's message; the change is not stored.
    for (body, want) in [
        (
            json!({"kind": "lead", "name": "Nobody"}),
            "leads need an email address",
        ),
        (
            json!({"kind": "lead", "name": "Joe", "email": "joe@gmail.com"}),
            "joe@gmail.com is not a company address",
        ),
    ] {
        let r = s.post("/v1/records", ADMIN_KEY, body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
        assert_eq!(r.code(), "rejected_by_automation");
        assert!(r.message().contains(want), "{}", r.message());
    }
    let all = s.get("/v1/records?kind=lead", ADMIN_KEY).await;
    assert_eq!(
        all.body["records"].as_array().unwrap().len(),
        1,
        "rejected leads were not stored"
    );

    // Both kinds of run are in the history, explained.
    let runs = s.runs(ADMIN_KEY, &format!("binding={b}")).await;
    let outcomes: Vec<&str> = runs
        .iter()
        .map(|r| r["outcome"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["guest_error", "guest_error", "ok"]);
    assert_eq!(runs[2]["effects"][0]["field"], "vetted");
    let one = s
        .get(
            &format!("/v1/runs/{}", runs[2]["id"].as_str().unwrap()),
            ADMIN_KEY,
        )
        .await;
    assert_eq!(one.body["module"], "gatekeeper");
    assert_eq!(one.body["host_calls"][0]["call"], "fields.set");

    // Disabled bindings do not run.
    let r = s
        .patch(
            &format!("/v1/bindings/{b}"),
            ADMIN_KEY,
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = s
        .post(
            "/v1/records",
            ADMIN_KEY,
            json!({"kind": "lead", "name": "Nobody"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test]
async fn background_runs_apply_their_effects_after_the_change() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    s.upload_guest(ADMIN_KEY, "effector", "effector").await;
    let b = s
        .bind(ADMIN_KEY, json!({"pipeline": "leads", "module": "effector", "version": 1,
            "triggers": [{"on": "created"}],
            "config": {"stage": "contacted", "field": "checked", "value": true, "channel": "notify", "to": "ann", "key": "welcome"},
            "grants": {"fields": ["checked"], "channels": ["notify"]}}))
        .await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Bg"}))
        .await;
    assert_eq!(
        lead["stage"], "new",
        "the change commits before background automation"
    );
    let id = lead["id"].as_str().unwrap().to_string();
    let done = eventually("the background run", 200, || async {
        let r = record(&s, &id).await;
        (r["stage"] == "contacted").then_some(r)
    })
    .await;
    assert_eq!(done["custom"]["checked"], true);
    assert_eq!(done["version"], 2, "one run, one atomic change");

    let runs = s.runs(ADMIN_KEY, &format!("record={id}")).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["outcome"]["kind"], "ok");
    assert_eq!(runs[0]["mode"], "background");
    assert_eq!(runs[0]["binding"], b);
    let events = s
        .get(&format!("/v1/events?record={id}"), ADMIN_KEY)
        .await
        .body["events"]
        .as_array()
        .unwrap()
        .clone();
    let caused: Vec<_> = events.iter().filter(|e| !e["cause"].is_null()).collect();
    assert_eq!(
        caused.len(),
        2,
        "stage change + field update, both caused by the run: {events:?}"
    );
    assert!(caused.iter().all(|e| e["cause"]["run"] == runs[0]["id"]));

    // The message is in the outbox; the same idempotency key is queued once.
    s.record(ADMIN_KEY, json!({"kind": "lead", "name": "Bg2"}))
        .await;
    eventually("second run", 200, || async {
        (s.runs(ADMIN_KEY, "outcome=ok").await.len() == 2).then_some(())
    })
    .await;
    let msgs = s.get("/v1/messages", ADMIN_KEY).await;
    let msgs = msgs.body["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0]["channel"], "notify");
    assert_eq!(msgs[0]["to"], "ann");
    eventually("the notification", 200, || async {
        let n = s.get("/v1/notifications?user=ann", ADMIN_KEY).await;
        (n.body["notifications"].as_array().unwrap().len() == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_run_that_traps_after_moving_changes_nothing() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    s.upload_guest(ADMIN_KEY, "trapper", "trap-after-move")
        .await;
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "trapper", "version": 1,
        "triggers": [{"on": "created"}], "grants": {"fields": ["*"]}}),
    )
    .await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Atomic"}))
        .await;
    let id = lead["id"].as_str().unwrap().to_string();
    let run = eventually("the trapping run", 200, || async {
        s.runs(ADMIN_KEY, &format!("record={id}"))
            .await
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(run["outcome"]["kind"], "trap", "{run}");
    assert!(run["effects"].as_array().unwrap().is_empty());
    assert_eq!(
        run["discarded"].as_array().unwrap().len(),
        2,
        "what it tried is visible: {run}"
    );
    let r = record(&s, &id).await;
    assert_eq!(r["stage"], "new");
    assert_eq!(r["version"], 1);
    assert!(r["custom"].get("touched").is_none());

    // Inline, the same module rejects the change outright.
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "trapper", "version": 1, "mode": "inline",
        "triggers": [{"on": "assigned"}], "grants": {"fields": ["*"]}}),
    )
    .await;
    let r = s
        .patch(
            &format!("/v1/records/{id}"),
            ADMIN_KEY,
            json!({"owner": "ann"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.message().contains("trapped"), "{}", r.message());
    assert!(
        record(&s, &id).await["owner"].is_null(),
        "the assignment was not stored"
    );
}

#[tokio::test]
async fn each_denied_effect_fails_the_run_and_applies_nothing() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    s.upload_guest(ADMIN_KEY, "effector", "effector").await;
    let b = s
        .bind(ADMIN_KEY, json!({"pipeline": "leads", "module": "effector", "version": 1, "mode": "inline",
            "triggers": [{"on": "created"}], "grants": {"fields": ["score"], "channels": ["email"]}}))
        .await;
    let cases = [
        (
            json!({"field": "secret", "value": 1}),
            "new",
            "field \"secret\" is not granted",
        ),
        (
            json!({"field": "score", "value": 1, "channel": "sms", "to": "+48"}),
            "new",
            "channel \"sms\" is not granted",
        ),
        (
            json!({"field": "score", "value": 1, "stage": "new"}),
            "qualified",
            "needs the backward grant",
        ),
        (
            json!({"field": "score", "value": 1, "stage": "mars"}),
            "new",
            "\"mars\" is not in pipeline",
        ),
    ];
    for (config, start, want) in cases {
        let r = s
            .patch(
                &format!("/v1/bindings/{b}"),
                ADMIN_KEY,
                json!({"config": config}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let r = s
            .post(
                "/v1/records",
                ADMIN_KEY,
                json!({"kind": "lead", "name": "D", "stage": start}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{config}: {:?}",
            r.body
        );
        assert!(
            r.message().contains("denied") && r.message().contains(want),
            "{config}: {}",
            r.message()
        );
    }
    let denied = s.runs(ADMIN_KEY, "outcome=denied").await;
    assert_eq!(denied.len(), 4);
    assert!(denied
        .iter()
        .all(|r| r["effects"].as_array().unwrap().is_empty()));
    assert!(s.get("/v1/records", ADMIN_KEY).await.body["records"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(s.get("/v1/messages", ADMIN_KEY).await.body["messages"]
        .as_array()
        .unwrap()
        .is_empty());

    // With the grants, the same effects go through.
    s.patch(
        &format!("/v1/bindings/{b}"),
        ADMIN_KEY,
        json!({"config": {"field": "score", "value": 1, "stage": "new"},
        "grants": {"fields": ["score"], "backward": true}}),
    )
    .await;
    let r = s
        .post(
            "/v1/records",
            ADMIN_KEY,
            json!({"kind": "lead", "name": "D", "stage": "qualified"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["stage"], "new");
}

#[tokio::test]
async fn cascades_across_modules_and_the_loop_guard() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    s.upload_guest(ADMIN_KEY, "effector", "effector").await;
    s.upload_guest(ADMIN_KEY, "toggler", "toggler").await;
    // A (background) moves new leads on; B (inline) greets whoever enters "contacted".
    let a = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "effector", "version": 1,
        "triggers": [{"on": "created"}], "config": {"stage": "contacted"}}),
        )
        .await;
    let b = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "effector", "version": 1, "mode": "inline",
        "triggers": [{"on": "entered_stage", "stage": "contacted"}],
        "config": {"field": "greeted", "value": true, "channel": "notify", "to": "ann"},
        "grants": {"fields": ["greeted"], "channels": ["notify"]}}),
        )
        .await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Chain"}))
        .await;
    let id = lead["id"].as_str().unwrap().to_string();
    let r = eventually("the cascade", 200, || async {
        let r = record(&s, &id).await;
        (r["custom"]["greeted"] == true).then_some(r)
    })
    .await;
    assert_eq!(r["stage"], "contacted");
    let runs = s.runs(ADMIN_KEY, &format!("record={id}")).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    let of = |bid: &str| runs.iter().find(|r| r["binding"] == bid).unwrap().clone();
    assert_eq!(of(&a)["depth"], 0);
    assert_eq!(of(&b)["depth"], 1);

    // The toggler moves a record back whenever it moves: its own move must not re-trigger it.
    s.delete(&format!("/v1/bindings/{a}"), ADMIN_KEY).await;
    s.delete(&format!("/v1/bindings/{b}"), ADMIN_KEY).await;
    let t = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "toggler", "version": 1, "mode": "inline",
        "triggers": [{"on": "stage_changed"}], "grants": {"backward": true}}),
        )
        .await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Ping"}))
        .await;
    let pid = lead["id"].as_str().unwrap();
    let r = s
        .post(
            &format!("/v1/records/{pid}/stage"),
            ADMIN_KEY,
            json!({"stage": "qualified"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["stage"], "new", "moved back once");
    assert_eq!(
        s.runs(ADMIN_KEY, &format!("binding={t}")).await.len(),
        1,
        "and only once"
    );
}

#[tokio::test]
async fn the_cascade_depth_cap_and_the_rate_guard_have_named_outcomes() {
    let dir = temp_dir();
    let mut config = Config::new(dir.path());
    config.automation.max_depth = 1;
    config.automation.runs_per_minute = 3;
    let s = Server::start_with(config).await;
    s.upload_guest(ADMIN_KEY, "effector", "effector").await;
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "effector", "version": 1, "mode": "inline",
        "triggers": [{"on": "created"}], "config": {"stage": "contacted"}}),
    )
    .await;
    let b = s.bind(ADMIN_KEY, json!({"pipeline": "leads", "module": "effector", "version": 1, "mode": "inline",
        "triggers": [{"on": "entered_stage", "stage": "contacted"}], "config": {"field": "greeted", "value": true},
        "grants": {"fields": ["greeted"]}})).await;
    let r = s
        .post(
            "/v1/records",
            ADMIN_KEY,
            json!({"kind": "lead", "name": "Deep"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["stage"], "contacted");
    assert!(
        r.body["custom"].get("greeted").is_none(),
        "the second level did not run"
    );
    let capped = s.runs(ADMIN_KEY, &format!("binding={b}")).await;
    assert_eq!(
        capped[0]["outcome"],
        json!({"kind": "cascade_limit", "depth": 1})
    );

    // A record changed over and over is locked out after 3 runs this minute.
    let u = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "deals", "module": "effector", "version": 1, "mode": "inline",
        "triggers": [{"on": "updated", "fields": ["phone"]}], "config": {}}),
        )
        .await;
    let deal = s
        .record(ADMIN_KEY, json!({"kind": "deal", "name": "Busy"}))
        .await;
    let did = deal["id"].as_str().unwrap();
    for i in 0..5 {
        let r = s
            .patch(
                &format!("/v1/records/{did}"),
                ADMIN_KEY,
                json!({"phone": format!("{i}")}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "a lockout skips automation, it does not block the change"
        );
    }
    let runs = s.runs(ADMIN_KEY, &format!("binding={u}")).await;
    let outcomes: Vec<&str> = runs
        .iter()
        .rev()
        .map(|r| r["outcome"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        vec!["ok", "ok", "ok", "rate_limited", "rate_limited"]
    );
    assert!(runs[0]["outcome"]["message"]
        .as_str()
        .unwrap()
        .contains("locked out"));
}

#[tokio::test]
async fn a_follow_up_fires_after_a_restart() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    s.upload_guest(ADMIN_KEY, "follower", "follower").await;
    let b = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "follower", "version": 1,
        "triggers": [{"on": "created"}], "config": {"after": 5},
        "grants": {"fields": ["followed_up"], "channels": ["email"]}}),
        )
        .await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Later"}))
        .await;
    let id = lead["id"].as_str().unwrap().to_string();
    eventually("the follow-up to be scheduled", 200, || async {
        let runs = s.runs(ADMIN_KEY, &format!("binding={b}")).await;
        (runs.len() == 1).then_some(())
    })
    .await;
    let timers = s.state.store.timers("default").unwrap();
    assert_eq!(timers.len(), 1, "{timers:?}");
    // Down until the timer is due (the clock passing it, however long stopping took); it
    // fires on start.
    let dir_path = s.stop().await;
    while chrono::Utc::now() <= timers[0].due {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = Server::start(&dir_path).await;
    let r = eventually("the follow-up", 200, || async {
        let r = record(&s, &id).await;
        (r["custom"]["followed_up"] == 1).then_some(r)
    })
    .await;
    assert_eq!(r["stage"], "new");
    let runs = s.runs(ADMIN_KEY, &format!("binding={b}")).await;
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["event_kind"], "scheduled");
    let msgs = s.get("/v1/messages", ADMIN_KEY).await;
    assert_eq!(msgs.body["messages"][0]["subject"], "Checking in");
    assert!(s.state.store.timers("default").unwrap().is_empty());
}

#[tokio::test]
async fn leaving_the_stage_cancels_its_timers() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    s.upload_guest(ADMIN_KEY, "follower", "follower").await;
    let b = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "follower", "version": 1, "mode": "inline",
        "triggers": [{"on": "created"}], "config": {"after": 1},
        "grants": {"fields": ["followed_up"], "channels": ["email"]}}),
        )
        .await;
    // A delayed trigger too: "2 seconds after entering qualified".
    s.upload_guest(ADMIN_KEY, "effector", "effector").await;
    let d = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "effector", "version": 1,
        "triggers": [{"on": "entered_stage", "stage": "qualified", "delay_seconds": 1}],
        "config": {"field": "nudged", "value": true}, "grants": {"fields": ["nudged"]}}),
        )
        .await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Mover"}))
        .await;
    let id = lead["id"].as_str().unwrap();
    assert_eq!(s.state.store.timers("default").unwrap().len(), 1);
    // Leaving "new" cancels the follow-up; entering "qualified" sets the delayed trigger,
    // and leaving "qualified" cancels that too.
    s.post(
        &format!("/v1/records/{id}/stage"),
        ADMIN_KEY,
        json!({"stage": "qualified"}),
    )
    .await;
    let timers = s.state.store.timers("default").unwrap();
    assert_eq!(timers.len(), 1, "{timers:?}");
    assert_eq!(timers[0].binding, d);
    s.post(
        &format!("/v1/records/{id}/stage"),
        ADMIN_KEY,
        json!({"stage": "contacted"}),
    )
    .await;
    assert!(s.state.store.timers("default").unwrap().is_empty());

    // Staying in the stage lets the delayed trigger fire. It is due after the cancelled
    // timers were, so once it has fired the scheduler is past them (a condition to wait
    // for, rather than a pause that a busy machine can outlast).
    let lead = s
        .record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": "Stayer", "stage": "qualified"}),
        )
        .await;
    let sid = lead["id"].as_str().unwrap().to_string();
    eventually("the delayed trigger", 200, || async {
        (record(&s, &sid).await["custom"]["nudged"] == true).then_some(())
    })
    .await;
    let r = record(&s, id).await;
    assert!(
        r["custom"].get("followed_up").is_none() && r["custom"].get("nudged").is_none(),
        "{r}"
    );
    assert_eq!(
        s.runs(ADMIN_KEY, &format!("binding={b}&record={id}"))
            .await
            .len(),
        1,
        "only the scheduling run"
    );
}

#[tokio::test]
async fn switching_a_binding_to_another_version_is_the_rollback() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    // Version 1 vets; version 2 (a different build) only tags.
    s.upload_guest(ADMIN_KEY, "scoring", "gatekeeper").await;
    s.upload_guest(ADMIN_KEY, "scoring", "effector").await;
    let b = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "scoring", "version": 2, "mode": "inline",
        "triggers": [{"on": "created"}], "config": {"field": "tag", "value": "v2"},
        "grants": {"fields": ["tag", "vetted"]}}),
        )
        .await;
    let r = s
        .record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": "A", "email": "a@acme.io"}),
        )
        .await;
    assert_eq!(r["custom"]["tag"], "v2");
    assert_eq!(
        s.delete("/v1/modules/scoring/versions/2", ADMIN_KEY)
            .await
            .status,
        StatusCode::CONFLICT
    );
    let r = s
        .patch(
            &format!("/v1/bindings/{b}"),
            ADMIN_KEY,
            json!({"version": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["revision"], 2);
    let r = s
        .record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": "B", "email": "b@acme.io"}),
        )
        .await;
    assert_eq!(r["custom"]["vetted"], true);
    assert!(r["custom"].get("tag").is_none());
    // Version 2 is no longer enabled anywhere, so it can go; version 1 cannot.
    assert_eq!(
        s.delete("/v1/modules/scoring/versions/2", ADMIN_KEY)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.delete("/v1/modules/scoring/versions/1", ADMIN_KEY)
            .await
            .status,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn bindings_are_validated_and_inbound_events_trigger_them() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    s.upload_guest(ADMIN_KEY, "effector", "effector").await;
    let bad = [
        (
            json!({"pipeline": "nope", "module": "effector", "version": 1, "triggers": [{"on": "created"}]}),
            "pipeline \"nope\" does not exist",
        ),
        (
            json!({"pipeline": "leads", "module": "effector", "version": 7, "triggers": [{"on": "created"}]}),
            "has no version 7",
        ),
        (
            json!({"pipeline": "leads", "module": "ghost", "version": 1, "triggers": [{"on": "created"}]}),
            "has no version 1",
        ),
        (
            json!({"pipeline": "leads", "module": "effector", "version": 1, "triggers": []}),
            "at least one trigger",
        ),
        (
            json!({"pipeline": "leads", "module": "effector", "version": 1, "triggers": [{"on": "entered_stage", "stage": "won"}]}),
            "\"won\" is not in pipeline",
        ),
        (
            json!({"pipeline": "leads", "module": "effector", "version": 1, "triggers": [{"on": "created"}], "config": [1]}),
            "must be a JSON object",
        ),
        (
            json!({"pipeline": "leads", "module": "effector", "version": 1, "triggers": [{"on": "created"}], "grants": {"fields": ["bad/name"]}}),
            "not a writable field",
        ),
    ];
    for (body, want) in bad {
        let r = s.post("/v1/bindings", ADMIN_KEY, body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            r.body
        );
        assert!(r.message().contains(want), "{body}: {}", r.message());
    }
    let r = s.post("/v1/bindings", ADMIN_KEY, json!({"pipeline": "leads", "module": "effector", "version": 1, "triggers": [{"on": "whenever"}]})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    let dev = s.key(ADMIN_KEY, "developer").await;
    let r = s.post("/v1/bindings", &dev, json!({"pipeline": "leads", "module": "effector", "version": 1, "triggers": [{"on": "created"}]})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(s.get("/v1/bindings", ADMIN_KEY).await.body["bindings"]
        .as_array()
        .unwrap()
        .is_empty());

    s.bind(ADMIN_KEY, json!({"pipeline": "leads", "module": "effector", "version": 1, "mode": "inline",
        "triggers": [{"on": "inbound", "name": "form_submitted"}], "config": {"field": "form", "value": "seen"},
        "grants": {"fields": ["form"]}})).await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Web"}))
        .await;
    let id = lead["id"].as_str().unwrap();
    let r = s
        .post(
            "/v1/events",
            ADMIN_KEY,
            json!({"name": "form_submitted", "record": id, "payload": {"page": "/pricing"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["type"], "inbound");
    assert_eq!(record(&s, id).await["custom"]["form"], "seen");
    let r = s
        .post(
            "/v1/events",
            ADMIN_KEY,
            json!({"name": "form_submitted", "record": "rec_nope"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = s.post("/v1/events", ADMIN_KEY, json!({"name": ""})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_background_run_never_overwrites_a_concurrent_change() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    s.upload_guest(ADMIN_KEY, "effector", "effector").await;
    // Slow enough that the agent's edit lands while the module runs.
    s.bind(ADMIN_KEY, json!({"pipeline": "leads", "module": "effector", "version": 1,
        "triggers": [{"on": "created"}], "config": {"field": "checked", "value": true, "work": 60_000_000},
        "grants": {"fields": ["checked"]}})).await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Busy"}))
        .await;
    let id = lead["id"].as_str().unwrap().to_string();
    let r = s
        .patch(
            &format!("/v1/records/{id}"),
            ADMIN_KEY,
            json!({"phone": "+48 600 100 200"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let done = eventually("the background run", 400, || async {
        let r = record(&s, &id).await;
        (r["custom"]["checked"] == true).then_some(r)
    })
    .await;
    assert_eq!(
        done["phone"], "+48 600 100 200",
        "the agent's change survived the run: {done}"
    );
    assert_eq!(done["version"], 3);
    let runs = s.runs(ADMIN_KEY, &format!("record={id}")).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["outcome"]["kind"], "ok");
}

#[tokio::test]
async fn a_timer_tied_to_a_stage_left_in_the_same_change_is_never_created() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    s.upload_guest(ADMIN_KEY, "follower", "follower").await;
    s.upload_guest(ADMIN_KEY, "effector", "effector").await;
    s.bind(ADMIN_KEY, json!({"pipeline": "leads", "module": "follower", "version": 1, "mode": "inline", "order": 0,
        "triggers": [{"on": "created"}], "config": {"after": 60}})).await;
    s.bind(ADMIN_KEY, json!({"pipeline": "leads", "module": "effector", "version": 1, "mode": "inline", "order": 1,
        "triggers": [{"on": "created"}], "config": {"stage": "contacted"}})).await;
    let lead = s
        .record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": "Moved on at once"}),
        )
        .await;
    assert_eq!(lead["stage"], "contacted");
    assert!(
        s.state.store.timers("default").unwrap().is_empty(),
        "the follow-up was tied to \"new\", which the lead left in the same change"
    );
    let r = s
        .post(
            "/v1/bindings",
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "effector", "version": 1,
        "triggers": [{"on": "deleted", "delay_seconds": 60}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn an_inline_run_on_a_deletion_sees_the_record_as_gone() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    s.upload_guest(ADMIN_KEY, "mover", "mover").await;
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "mover", "version": 1, "mode": "inline",
        "triggers": [{"on": "deleted"}]}),
    )
    .await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Going"}))
        .await;
    let id = lead["id"].as_str().unwrap();
    // The mover re-reads its record: within the deletion it no longer exists, so the rule
    // fails (and, being inline, refuses the deletion) instead of acting on a ghost.
    let r = s.delete(&format!("/v1/records/{id}"), ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(r.message().contains("not found"), "{}", r.message());
    assert_eq!(record(&s, id).await["name"], "Going", "nothing was deleted");
}

#[tokio::test]
async fn bad_binding_changes_and_inbound_events_are_refused() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    s.upload_guest(ADMIN_KEY, "effector", "effector").await;
    let b = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "effector", "version": 1,
        "triggers": [{"on": "created"}]}),
        )
        .await;
    let r = s
        .patch(&format!("/v1/bindings/{b}"), ADMIN_KEY, json!({"order": 2}))
        .await;
    assert_eq!(r.body["revision"], 2);
    // A change based on an old revision loses, and changes nothing.
    let r = s
        .patch(
            &format!("/v1/bindings/{b}"),
            ADMIN_KEY,
            json!({"order": 5, "revision": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(
        r.message().contains("expected version 1, found 2"),
        "{}",
        r.message()
    );
    let r = s
        .patch(
            &format!("/v1/bindings/{b}"),
            ADMIN_KEY,
            json!({"version": 9}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        s.get(&format!("/v1/bindings/{b}"), ADMIN_KEY).await.body["order"],
        2
    );
    assert_eq!(
        s.patch("/v1/bindings/bnd_nope", ADMIN_KEY, json!({"order": 1}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.delete("/v1/bindings/bnd_nope", ADMIN_KEY).await.status,
        StatusCode::NOT_FOUND
    );

    let big = "x".repeat(70 * 1024);
    let r = s
        .post(
            "/v1/events",
            ADMIN_KEY,
            json!({"name": "form_submitted", "payload": {"blob": big}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.message().contains("64 KiB"), "{}", r.message());
    let dev = s.key(ADMIN_KEY, "developer").await;
    assert_eq!(
        s.post("/v1/events", &dev, json!({"name": "x"}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

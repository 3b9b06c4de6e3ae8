//! Runs stay explainable and replay stays exact (issue 20): a dry-run on a past event and a
//! replay answer a module's HTTP calls from what the past run received — same request, same
//! answer, in order, nothing sent — and an unmatched request fails by name; `live` calls out
//! for real, within the grant. A replay names the events whose candidate asked for different
//! requests.

#![allow(clippy::unwrap_used)]

#[path = "outhttp/common.rs"]
mod common;

use common::{bind_caller, config, get, logs, run_once, Remote};
use reqwest::StatusCode;
use serde_json::Value;
use stagecraft_tests::{json, temp_dir, Server, ADMIN_KEY};

async fn dry(s: &Server, body: Value) -> Value {
    let r = s.dry_run(ADMIN_KEY, "caller", 1, body).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_answers_from_the_recorded_run_unless_live() {
    let dir = temp_dir();
    let s = Server::start_with(config(dir.path(), true)).await;
    let remote = Remote::start().await;
    let grants = json!({"fields": ["size"], "http": remote.grant()});
    let calls = json!([get(remote.url("/ok?n=1"))]);
    let b = bind_caller(
        &s,
        ADMIN_KEY,
        grants.clone(),
        json!({"calls": calls, "field": "size"}),
    )
    .await;
    let (lead, run) = run_once(&s, ADMIN_KEY, &b).await;
    assert_eq!(lead["custom"]["size"], 42);
    assert_eq!(remote.seen().len(), 1);
    let event = run["event"].as_str().unwrap();

    // The same request gets the recorded answer; nothing is sent.
    let d = dry(
        &s,
        json!({"event": event, "grants": grants, "config": {"calls": calls, "field": "size"}}),
    )
    .await;
    assert_eq!(d["outcome"]["kind"], "ok", "{d}");
    assert_eq!(d["http"][0]["replayed"], true, "{d}");
    assert_eq!(d["http"][0]["status"], 200);
    assert_eq!(d["effects"][0]["value"], 42, "{d}");
    assert_eq!(remote.seen().len(), 1, "a dry-run sent a request");

    // A request the recorded run did not make fails by name, and is not sent either.
    let other = json!([get(remote.url("/ok?n=2"))]);
    let d = dry(
        &s,
        json!({"event": event, "grants": grants, "config": {"calls": other}}),
    )
    .await;
    let error = d["http"][0]["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("replay_unmatched: "), "{d}");
    assert!(logs(&d).contains("replay_unmatched"), "{}", logs(&d));
    assert_eq!(remote.seen().len(), 1);

    // The same request twice: the second has no recorded answer left.
    let twice = json!([get(remote.url("/ok?n=1")), get(remote.url("/ok?n=1"))]);
    let d = dry(
        &s,
        json!({"event": event, "grants": grants, "config": {"calls": twice}}),
    )
    .await;
    assert_eq!(d["http"][0]["status"], 200, "{d}");
    assert!(d["http"][1]["error"]
        .as_str()
        .unwrap_or_default()
        .starts_with("replay_unmatched"));

    // `live` calls out, within the grant given.
    let d = dry(
        &s,
        json!({"event": event, "grants": grants, "config": {"calls": other}, "live": true}),
    )
    .await;
    assert_eq!(d["http"][0]["status"], 200, "{d}");
    assert!(d["http"][0].get("replayed").is_none(), "{d}");
    assert_eq!(remote.seen().len(), 2);
    assert_eq!(remote.seen()[1].path, "/ok?n=2");
    // …and not beyond it.
    let d = dry(
        &s,
        json!({"record": lead["id"], "config": {"calls": other}, "live": true}),
    )
    .await;
    assert!(
        d["http"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("not_granted"),
        "{d}"
    );
    assert_eq!(remote.seen().len(), 2);
}

async fn replay(s: &Server, binding: &str) -> Value {
    let r = s
        .post(
            "/v1/modules/caller/versions/1/replay",
            ADMIN_KEY,
            json!({"binding": binding, "last": 10}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_names_the_events_whose_requests_diverged() {
    let dir = temp_dir();
    let s = Server::start_with(config(dir.path(), true)).await;
    let remote = Remote::start().await;
    let grants = json!({"fields": ["size"], "http": remote.grant()});
    let calls = json!([get(remote.url("/ok?n=1"))]);
    let b = bind_caller(
        &s,
        ADMIN_KEY,
        grants,
        json!({"calls": calls, "field": "size"}),
    )
    .await;
    for name in ["Ada", "Grace"] {
        s.record(ADMIN_KEY, json!({"kind": "lead", "name": name}))
            .await;
    }
    assert_eq!(remote.seen().len(), 2);
    // Same requests: the same answers, the same effects, nothing sent.
    let r = replay(&s, &b).await;
    assert_eq!(r["summary"]["same"], 2, "{r}");
    assert_eq!(r["summary"]["http_diverged"], 0, "{r}");
    assert_eq!(remote.seen().len(), 2);
    // The binding now asks for something else: every event diverges, by name.
    let r = s
        .patch(
            &format!("/v1/bindings/{b}"),
            ADMIN_KEY,
            json!({"config": {"calls": [get(remote.url("/ok?n=9"))], "field": "size"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = replay(&s, &b).await;
    assert_eq!(r["summary"]["http_diverged"], 2, "{r}");
    assert_eq!(r["summary"]["different"], 2, "{r}");
    let d = &r["differences"][0];
    assert!(
        d["http_divergence"]
            .as_str()
            .unwrap()
            .starts_with("replay_unmatched: "),
        "{d}"
    );
    assert_eq!(remote.seen().len(), 2, "a replay sent a request");
}

//! Shared capacity is shared fairly: run slots per tenant with a reserve for inline runs,
//! bounded waiting with a named refusal, replay shares and result retention per tenant, and
//! background jobs taken round-robin across tenants.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use stagecraft::config::Config;
use stagecraft_tests::{eventually, json, temp_dir, Server, ADMIN_KEY};

/// A second tenant; returns its admin key.
async fn tenant(s: &Server, id: &str) -> String {
    let r = s
        .post("/v1/tenants", ADMIN_KEY, json!({"id": id, "name": id}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["admin_key"].as_str().unwrap().to_string()
}

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
    config.limits.timeout = Duration::from_secs(4);
    config.limits.fuel = u64::MAX / 2;
    let s = Arc::new(Server::start_with(config).await);
    let other = tenant(&s, "globex").await;
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

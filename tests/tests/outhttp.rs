//! Outbound HTTP from modules (issue 20): the `caller` fixture calls a small server on
//! 127.0.0.1 through `wasi:http/outgoing-handler`. A call goes out only within its binding's
//! grant and through the address guard (loopback opened by `allow_internal_destinations`,
//! as for webhooks); every refusal and limit fails inside the run by name, the module carries
//! on, and the run record keeps each call. The hostile cases end by name with no harm to
//! the host: a flood, a gigantic response, a slow-loris server (the run ends `timeout` at its
//! deadline while another tenant's run goes on), a redirect to an internal address. (Every
//! peer here is on 127.0.0.1; no test connects anywhere else.)

#![allow(clippy::unwrap_used)]

#[path = "outhttp/common.rs"]
mod common;

use std::time::Duration;

use common::{bind_caller, config, get, logs, run_once, Remote};
use reqwest::StatusCode;
use serde_json::Value;
use stagecraft_tests::{eventually, json, temp_dir, Server, ADMIN_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_call_reaches_the_remote_and_is_recorded() {
    let dir = temp_dir();
    let s = Server::start_with(config(dir.path(), true)).await;
    let remote = Remote::start().await;
    let mut grants = json!({"fields": ["size"]});
    grants["http"] = remote.grant();
    let b = bind_caller(
        &s,
        ADMIN_KEY,
        grants,
        json!({"calls": [get(remote.url("/ok?q=1"))], "field": "size"}),
    )
    .await;
    let (lead, run) = run_once(&s, ADMIN_KEY, &b).await;
    assert_eq!(run["outcome"]["kind"], "ok", "{run}");
    assert_eq!(lead["custom"]["size"], 42, "{lead}");
    assert!(logs(&run).contains("call 1: status 200"), "{}", logs(&run));
    let x = &run["http"][0];
    assert_eq!(x["method"], "GET");
    assert_eq!(x["url"], remote.url("/ok?q=1"));
    assert_eq!(x["status"], 200);
    assert_eq!(x["response_body"], r#"{"value":42}"#);
    assert_eq!(x["response_complete"], true);
    assert_eq!(
        x["request_headers"][0],
        json!({"name": "accept", "value": "application/json"})
    );
    assert!(x["error"].is_null(), "{x}");
    let seen = remote.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/ok?q=1");
    assert!(seen[0]
        .headers
        .contains(&("accept".into(), "application/json".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_outside_the_grant_fail_by_name_inside_the_run() {
    let dir = temp_dir();
    let s = Server::start_with(config(dir.path(), true)).await;
    let remote = Remote::start().await;
    let other = format!("127.0.0.1:{}", remote.port.wrapping_add(1).max(1));
    let cases = [
        (
            json!({}),
            "not_granted: this module's binding grants no HTTP",
        ),
        (
            json!({"http": {"destinations": [other], "allow_http": true}}),
            "is not among the binding's HTTP destinations",
        ),
        (
            json!({"http": {"destinations": [format!("127.0.0.1:{}", remote.port)]}}),
            "http:// is not granted",
        ),
    ];
    for (i, (grants, says)) in cases.into_iter().enumerate() {
        let name = format!("caller{i}");
        s.upload_guest(ADMIN_KEY, &name, "caller").await;
        let b = s
            .bind(
                ADMIN_KEY,
                json!({"pipeline": "leads", "module": name, "version": 1, "mode": "inline",
                    "triggers": [{"on": "created"}], "grants": grants,
                    "config": {"calls": [get(remote.url("/ok"))]}}),
            )
            .await;
        let lead = s
            .record(ADMIN_KEY, json!({"kind": "lead", "name": "Ada"}))
            .await;
        let runs = s.runs(ADMIN_KEY, &format!("binding={b}")).await;
        let run = runs
            .iter()
            .find(|r| r["record"] == lead["id"])
            .unwrap_or_else(|| panic!("{runs:?}"));
        // The module got an error it could handle: the run is ok, the log names why.
        assert_eq!(run["outcome"]["kind"], "ok", "{run}");
        let log = logs(run);
        assert!(log.contains(says), "{log}");
        assert!(log.contains("call 1: error denied: "), "{log}");
        let error = run["http"][0]["error"].as_str().unwrap();
        assert!(error.starts_with("not_granted: "), "{error}");
        assert!(run["http"][0]["status"].is_null());
    }
    assert_eq!(remote.accepted(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_for_every_host_is_refused_when_binding() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    s.upload_guest(ADMIN_KEY, "caller", "caller").await;
    for (destinations, says) in [
        (json!(["*"]), "would grant every host"),
        (json!(["*.com"]), "top-level domain"),
        (json!(["https://api.example.com/v1"]), "not a destination"),
    ] {
        let r = s
            .post(
                "/v1/bindings",
                ADMIN_KEY,
                json!({"pipeline": "leads", "module": "caller", "version": 1,
                    "triggers": [{"on": "created"}],
                    "grants": {"http": {"destinations": destinations}}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
        assert_eq!(r.code(), "invalid");
        assert!(r.message().contains("grants.http"), "{}", r.message());
        assert!(r.message().contains(says), "{}", r.message());
    }
    let r = s.get("/v1/bindings", ADMIN_KEY).await;
    assert_eq!(
        r.body["bindings"].as_array().map(Vec::len),
        Some(0),
        "{:?}",
        r.body
    );
}

/// Without the operator's flag the guard refuses loopback, as written and as a name
/// resolves, before any connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_guard_refuses_internal_destinations_before_connecting() {
    let dir = temp_dir();
    let s = Server::start_with(config(dir.path(), false)).await;
    let remote = Remote::start().await;
    let port = remote.port;
    let mut hosts = vec![
        ("127.0.0.1".to_string(), "refused: 127.0.0.1 is loopback"),
        ("localhost".to_string(), "is a loopback name"),
    ];
    // A name that DNS (here the hosts file) resolves to loopback, if this machine has one;
    // checked to resolve only to loopback first, so nothing else could be reached.
    let me = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string();
    if !me.is_empty() && !me.contains("localhost") {
        let found: Vec<_> = tokio::net::lookup_host((me.as_str(), port))
            .await
            .map(|a| a.collect())
            .unwrap_or_default();
        if !found.is_empty()
            && found
                .iter()
                .all(|a: &std::net::SocketAddr| a.ip().is_loopback())
        {
            hosts.push((me, "resolves only to internal addresses"));
        } else {
            eprintln!("skipping the resolved-name case: {me} does not resolve only to loopback");
        }
    }
    let destinations: Vec<String> = hosts.iter().map(|(h, _)| format!("{h}:{port}")).collect();
    let calls: Vec<Value> = hosts
        .iter()
        .map(|(h, _)| get(format!("http://{h}:{port}/ok")))
        .collect();
    let b = bind_caller(
        &s,
        ADMIN_KEY,
        json!({"http": {"destinations": destinations, "allow_http": true}}),
        json!({"calls": calls}),
    )
    .await;
    let (_, run) = run_once(&s, ADMIN_KEY, &b).await;
    assert_eq!(run["outcome"]["kind"], "ok", "{run}");
    for (i, (_, says)) in hosts.iter().enumerate() {
        let error = run["http"][i]["error"].as_str().unwrap_or_default();
        assert!(error.starts_with("address_refused: "), "{error}");
        assert!(error.contains(says), "{error}");
    }
    assert!(
        logs(&run).contains("error address_refused"),
        "{}",
        logs(&run)
    );
    assert_eq!(remote.accepted(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_stops_at_the_request_limit() {
    let dir = temp_dir();
    let s = Server::start_with(config(dir.path(), true)).await;
    let remote = Remote::start().await;
    let b = bind_caller(
        &s,
        ADMIN_KEY,
        json!({"http": remote.grant()}),
        json!({"calls": [get(remote.url("/ok"))], "repeat": 200}),
    )
    .await;
    let (_, run) = run_once(&s, ADMIN_KEY, &b).await;
    let limit = stagecraft::sandbox::Limits::default().http.requests as usize;
    assert_eq!(run["outcome"]["kind"], "ok", "{run}");
    assert_eq!(remote.seen().len(), limit);
    let http = run["http"].as_array().unwrap();
    assert_eq!(http.len(), limit + 1, "one refusal is recorded, not 190");
    let refused = http[limit]["error"].as_str().unwrap();
    assert!(refused.starts_with("request_limit: "), "{refused}");
    let log = logs(&run);
    assert!(
        log.contains(&format!(
            "{} more HTTP requests were refused",
            200 - limit - 1
        )),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gigantic_bodies_are_cut_off_by_name() {
    let dir = temp_dir();
    let s = Server::start_with(config(dir.path(), true)).await;
    let remote = Remote::start().await;
    let limits = stagecraft::sandbox::Limits::default().http;
    let b = bind_caller(
        &s,
        ADMIN_KEY,
        json!({"http": remote.grant()}),
        json!({"calls": [
            get(remote.url("/big")),
            {"method": "POST", "url": remote.url("/ok"), "body_bytes": limits.request_bytes + 1},
        ]}),
    )
    .await;
    let (_, run) = run_once(&s, ADMIN_KEY, &b).await;
    assert_eq!(run["outcome"]["kind"], "ok", "{run}");
    let big = run["http"][0]["error"].as_str().unwrap();
    assert!(big.starts_with("response_too_large: "), "{big}");
    let sent = run["http"][1]["error"].as_str().unwrap();
    assert!(sent.starts_with("request_too_large: "), "{sent}");
    let log = logs(&run);
    assert!(log.contains("error response_too_large"), "{log}");
    // The oversized request never left: the remote saw only the /big request.
    assert_eq!(
        remote
            .seen()
            .iter()
            .map(|s| s.path.as_str())
            .collect::<Vec<_>>(),
        vec!["/big"]
    );
    assert!(remote.seen()[0].body == 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_an_internal_address_is_not_followed() {
    let dir = temp_dir();
    let s = Server::start_with(config(dir.path(), true)).await;
    let remote = Remote::start().await;
    let internal = Remote::start().await;
    let b = bind_caller(
        &s,
        ADMIN_KEY,
        json!({"http": remote.grant()}),
        json!({"calls": [get(remote.url(&format!("/redirect?to={}", internal.port)))]}),
    )
    .await;
    let (_, run) = run_once(&s, ADMIN_KEY, &b).await;
    assert_eq!(run["outcome"]["kind"], "ok", "{run}");
    assert!(logs(&run).contains("call 1: status 302"), "{}", logs(&run));
    let x = &run["http"][0];
    assert_eq!(x["status"], 302);
    assert!(x["response_headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["name"] == "location"));
    assert_eq!(internal.accepted(), 0);
}

/// A remote that never finishes answering holds only its own run: that run ends `timeout`
/// at its deadline (the deadline covers waiting on the network), while another tenant's
/// inline run completes meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_loris_remote_ends_the_run_at_its_deadline_and_holds_up_no_one_else() {
    let dir = temp_dir();
    let mut c = config(dir.path(), true);
    c.limits.timeout = Duration::from_secs(6);
    c.limits.http.request_timeout = Duration::from_secs(600);
    let s = Server::start_with(c).await;
    let remote = Remote::start().await;
    let r = s
        .post(
            "/v1/tenants",
            ADMIN_KEY,
            json!({"id": "other", "name": "other"}),
        )
        .await;
    let other = r.body["admin_key"].as_str().unwrap().to_string();
    let ob = bind_caller(&s, &other, json!({}), json!({"calls": []})).await;
    s.upload_guest(ADMIN_KEY, "caller", "caller").await;
    let b = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "caller", "version": 1, "mode": "background",
                "triggers": [{"on": "created"}], "grants": {"http": remote.grant()},
                "config": {"calls": [get(remote.url("/slow"))]}}),
        )
        .await;
    s.record(ADMIN_KEY, json!({"kind": "lead", "name": "Slow"}))
        .await;
    eventually("the slow request arrives", 600, || async {
        (!remote.seen().is_empty()).then_some(())
    })
    .await;
    // Meanwhile another tenant's inline run goes through, while the slow run still waits
    // (its record is written when it ends).
    let (_, quick) = run_once(&s, &other, &ob).await;
    assert_eq!(quick["outcome"]["kind"], "ok", "{quick}");
    assert!(
        s.runs(ADMIN_KEY, &format!("binding={b}")).await.is_empty(),
        "the slow run ended before the other tenant's run did"
    );
    let slow = eventually("the slow run ends", 1200, || async {
        s.runs(ADMIN_KEY, &format!("binding={b}"))
            .await
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(slow["outcome"]["kind"], "timeout", "{slow}");
    let took = slow["duration_us"].as_u64().unwrap();
    assert!(took >= 6_000_000, "ended before its deadline: {took} us");
    let x = &slow["http"][0];
    assert!(x["error"].as_str().unwrap().starts_with("timeout: "), "{x}");
    assert!(logs(&slow).contains("timeout: the run's deadline passed while it waited"));
}

/// The same call from Rust (`wasi:http` directly), Python (componentize-py's bindings) and
/// JavaScript (`fetch`, over the same interface) has the same effects; each uploads like any
/// other module.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_call_from_rust_python_and_javascript_has_the_same_effects() {
    let dir = temp_dir();
    let s = Server::start_with(config(dir.path(), true)).await;
    let remote = Remote::start().await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Ada"}))
        .await;
    let mut effects = Vec::new();
    for (module, guest) in [
        ("rust-caller", "caller"),
        ("python-caller", "python-caller"),
        ("js-caller", "js-caller"),
    ] {
        s.upload_guest(ADMIN_KEY, module, guest).await;
        let r = s
            .dry_run(
                ADMIN_KEY,
                module,
                1,
                json!({"record": lead["id"], "live": true,
                    "grants": {"fields": ["size"], "http": remote.grant()},
                    "config": {"calls": [get(remote.url("/ok"))], "field": "size"}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{module}: {:?}", r.body);
        assert_eq!(r.body["outcome"]["kind"], "ok", "{module}: {}", r.body);
        assert!(
            logs(&r.body).contains("call 1: status 200 body {\"value\":42}"),
            "{module}: {}",
            logs(&r.body)
        );
        assert_eq!(r.body["http"][0]["status"], 200, "{module}");
        effects.push(r.body["effects"].clone());
    }
    assert_eq!(effects[0], effects[1]);
    assert_eq!(effects[0], effects[2]);
    assert_eq!(effects[0][0]["value"], 42, "{:?}", effects[0]);
    assert_eq!(remote.seen().len(), 3);
}

/// One request has its own timeout, shorter for inline runs (a person is waiting): past it
/// the call fails `request_timeout` inside the run, which carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_of_an_inline_run_times_out_by_name() {
    let dir = temp_dir();
    let mut c = config(dir.path(), true);
    c.limits.timeout = Duration::from_secs(60);
    c.limits.http.inline_request_timeout = Duration::from_millis(500);
    let s = Server::start_with(c).await;
    let remote = Remote::start().await;
    let b = bind_caller(
        &s,
        ADMIN_KEY,
        json!({"http": remote.grant()}),
        json!({"calls": [get(remote.url("/slow")), get(remote.url("/ok"))]}),
    )
    .await;
    let (_, run) = run_once(&s, ADMIN_KEY, &b).await;
    assert_eq!(run["outcome"]["kind"], "ok", "{run}");
    let error = run["http"][0]["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("request_timeout: "), "{run}");
    assert!(
        logs(&run).contains("call 1: error request_timeout"),
        "{}",
        logs(&run)
    );
    assert_eq!(run["http"][1]["status"], 200, "the run carried on: {run}");
}

/// An inline run waits on the network at most `inline_network_wait` in all (a person is
/// waiting): past it the run ends `network_timeout`, long before its own deadline, and the
/// change it belongs to is refused whole — no record, a run record naming why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_run_waits_on_the_network_only_briefly_and_nothing_is_applied() {
    let dir = temp_dir();
    let mut c = config(dir.path(), true);
    c.limits.timeout = Duration::from_secs(120);
    c.limits.http.request_timeout = Duration::from_secs(600);
    c.limits.http.inline_request_timeout = Duration::from_secs(600);
    c.limits.http.inline_network_wait = Duration::from_secs(1);
    let s = Server::start_with(c).await;
    let remote = Remote::start().await;
    let mut grants = json!({"fields": ["size"]});
    grants["http"] = remote.grant();
    let b = bind_caller(
        &s,
        ADMIN_KEY,
        grants,
        json!({"calls": [get(remote.url("/slow"))], "field": "size"}),
    )
    .await;
    let started = std::time::Instant::now();
    let r = s
        .post(
            "/v1/records",
            ADMIN_KEY,
            json!({"kind": "lead", "name": "Waiting"}),
        )
        .await;
    // Promptly: the run's own deadline is 120 s and the request's 600 s.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.code(), "rejected_by_automation");
    assert!(
        r.message().starts_with("network_timeout: "),
        "{}",
        r.message()
    );
    let leads = s.get("/v1/records?kind=lead", ADMIN_KEY).await;
    assert!(
        !leads.body.to_string().contains("Waiting"),
        "nothing applied: {:?}",
        leads.body
    );
    let runs = s.runs(ADMIN_KEY, &format!("binding={b}")).await;
    assert_eq!(runs[0]["outcome"]["kind"], "network_timeout", "{}", runs[0]);
    let error = runs[0]["http"][0]["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("network_timeout: "), "{error}");
    let took = runs[0]["duration_us"].as_u64().unwrap();
    assert!(took >= 1_000_000, "ended before its budget: {took} us");
}

/// Recorded exchanges count in the run record's budget (256 KiB with logs, host calls and
/// error): a run whose exchanges would pass it keeps the first ones whole and the next ones
/// with their bodies cut (marked; request and status kept), with a note that says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_exchanges_count_in_the_run_records_budget() {
    let dir = temp_dir();
    let mut c = config(dir.path(), true);
    c.limits.http.requests = 40;
    let report_bytes = c.limits.report_bytes;
    let s = Server::start_with(c).await;
    let remote = Remote::start().await;
    let b = bind_caller(
        &s,
        ADMIN_KEY,
        json!({"http": remote.grant()}),
        json!({"calls": [get(remote.url("/pad"))], "repeat": 30}),
    )
    .await;
    let (_, run) = run_once(&s, ADMIN_KEY, &b).await;
    assert_eq!(run["outcome"]["kind"], "ok", "{run}");
    assert_eq!(remote.seen().len(), 30);
    let kept = run["http"].as_array().unwrap();
    let whole = kept
        .iter()
        .filter(|x| x["response_complete"] == true)
        .count();
    assert!(whole > 5 && whole < 30, "{whole}");
    let last = kept.last().unwrap();
    assert_eq!(last["response_body_cut"], true, "{last}");
    assert_eq!(last["response_complete"], false, "{last}");
    assert_eq!(last["status"], 200, "the request and status stay: {last}");
    let size = |v: &Value| serde_json::to_vec(v).unwrap().len();
    let total = size(&run["logs"]) + size(&run["http"]) + size(&run["host_calls"]);
    assert!(total <= report_bytes, "{total} > {report_bytes}");
    let log = logs(&run);
    let cut = format!(
        "[cut: the response bodies of {} HTTP exchanges",
        kept.len() - whole
    );
    assert!(log.contains(&cut), "{log}");
}

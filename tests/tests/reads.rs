//! Reads never stall the server: store work runs in the store pool, off the async threads,
//! so `/healthz` stays fast while many clients scan, and a tenant whose requests cannot get
//! a turn in time is told so (503 `store_busy`, `Retry-After`).

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use stagecraft::store::{Changeset, Store};
use stagecraft_tests::{eventually, json, temp_dir, Server, ADMIN_KEY};

/// Writes `n` records straight through the store, 500 per commit: one lead in 1,000 sits in
/// the `support` pipeline, the rest are contacts of ann with a few custom fields.
fn bulk_records(store: &Store, n: usize) {
    let now = chrono::Utc::now();
    let mut cs = Changeset::new("default");
    for i in 0..n {
        let body: Value = if i % 1000 == 0 {
            json!({"kind": "lead", "name": format!("Ticket {i}"), "pipeline": "support"})
        } else {
            json!({"kind": "contact", "name": format!("Contact {i}"), "owner": "ann",
                   "email": format!("c{i}@example.com"),
                   "custom": {"source": "import", "score": i % 100, "region": "emea",
                              "notes": "called twice, wants a demo next quarter"}})
        };
        let input = serde_json::from_value(body).unwrap();
        let (_, one) = stagecraft::crm::records::create(store, "default", input, now).unwrap();
        cs.records.extend(one.records);
        cs.events.extend(one.events);
        if cs.records.len() == 500 || i + 1 == n {
            store.commit(&cs).unwrap();
            cs = Changeset::new("default");
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_stays_fast_while_many_clients_scan() {
    let dir = temp_dir();
    let s = Arc::new(Server::start(dir.path()).await);
    let r = s
        .post(
            "/v1/pipelines",
            ADMIN_KEY,
            json!({"id": "support", "name": "Support", "kind": "lead", "stages": [
                {"id": "open", "name": "Open", "semantic": "open"},
                {"id": "solved", "name": "Solved", "semantic": "won"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let store = s.state.store.clone();
    tokio::task::spawn_blocking(move || bulk_records(&store, 30_000))
        .await
        .unwrap();

    // 80 clients search names for what no record holds: no index answers a name search, so
    // each page looks at 10,000 records (filtered lists read indexes and cost little now).
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let load = reqwest::Client::new();
    let mut clients = Vec::new();
    for i in 0..80 {
        let (s, stop, served, load) = (s.clone(), stop.clone(), served.clone(), load.clone());
        let path = if i < 64 {
            "/v1/records?q=zzz&limit=50"
        } else {
            "/v1/records?q=qqq&kind=contact&limit=50"
        };
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let resp = load
                    .get(format!("{}{path}", s.base))
                    .bearer_auth(ADMIN_KEY)
                    .send()
                    .await
                    .unwrap();
                // A request that waited its whole turn out is refused by name (fine here).
                let status = resp.status();
                let body = resp.bytes().await.unwrap();
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    assert!(String::from_utf8_lossy(&body).contains("store_busy"));
                    continue;
                }
                assert_eq!(status, StatusCode::OK);
                served.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // The load is on once every worker scans and requests wait in line.
    let workers = s.state.pool.config().workers;
    eventually("the store pool is saturated", 2400, || {
        let (running, waiting) = s.state.pool.load();
        async move { (running == workers && waiting >= 32).then_some(()) }
    })
    .await;

    let probe = reqwest::Client::new();
    let mut took = Vec::new();
    for _ in 0..100 {
        let started = Instant::now();
        let resp = probe
            .get(format!("{}/healthz", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        took.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (running, waiting) = s.state.pool.load();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    took.sort();
    let (p50, p99) = (percentile(&took, 0.5), percentile(&took, 0.99));
    let scans = served.load(Ordering::Relaxed);
    println!(
        "/healthz under {workers} scanning workers ({running} running, {waiting} waiting at the end, \
         {scans} lists served): p50 {p50:?}, p99 {p99:?}"
    );
    assert!(waiting > 0, "the load lasted through the measurement");
    assert!(
        p99 < Duration::from_millis(300),
        "/healthz p99 {p99:?} (p50 {p50:?}) while clients scan"
    );
}

#[tokio::test]
async fn a_request_that_waits_too_long_for_the_store_is_told_to_retry() {
    let dir = temp_dir();
    let mut config = stagecraft::config::Config::new(dir.path());
    config.store_pool.workers = 1;
    config.store_pool.max_wait = Duration::from_millis(300);
    let s = Server::start_with(config).await;

    // Something holds the only worker.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let pool = s.state.pool.clone();
    let blocker = tokio::spawn(async move {
        pool.run("default", move || {
            held.recv().ok();
            Ok::<_, stagecraft::http::ApiError>(())
        })
        .await
    });
    eventually("the worker is taken", 400, || {
        let load = s.state.pool.load();
        async move { (load == (1, 0)).then_some(()) }
    })
    .await;

    let resp = s
        .request(reqwest::Method::GET, "/v1/pipelines")
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "1");
    let r = Server::read(resp).await;
    assert_eq!(r.code(), "store_busy", "{:?}", r.body);
    assert!(r.message().contains("300ms"), "{}", r.message());
    // Writes wait in the same line and are refused the same way, with nothing written.
    let r = s
        .post(
            "/v1/records",
            ADMIN_KEY,
            json!({"kind": "contact", "name": "Ada"}),
        )
        .await;
    assert_eq!(r.code(), "store_busy", "{:?}", r.body);
    // The server itself still answers.
    let r = s.call(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        s.state.pool.load(),
        (1, 0),
        "refused requests left no trace"
    );

    release.send(()).unwrap();
    blocker.await.unwrap().unwrap();
    let r = s.get("/v1/records", ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["records"], json!([]));
}

//! Run statistics with several hosts on one PostgreSQL database: stage moves sent at once
//! through every host, each running an inline binding inside its request, are each counted
//! exactly once in the stats (`/v1/bindings/{id}/stats`, `/v1/modules/{name}/stats`) that
//! every host answers — the rollups are deltas that concurrent commits add without
//! colliding, summed and compacted on read (host/store-pg/src/rollup.rs).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use stagecraft_tests::hosts::{spawn, Host};
use stagecraft_tests::postgres::TempDatabase;
use stagecraft_tests::temp_dir;

const HOSTS: usize = 2;
const CLIENTS: usize = 8;
/// Leads per client, each moved twice: more moves than a read folds at once (64), so the
/// stats read compacts deltas too.
const LEADS: usize = 12;

/// A POST that must be acknowledged (a 503 is retried after a pause, as a client would).
async fn send(h: &Host, path: &str, body: Value) -> Value {
    for _ in 0..600 {
        let (status, v) = h
            .try_call(
                reqwest::Method::POST,
                path,
                stagecraft_tests::ADMIN_KEY,
                Some(body.clone()),
            )
            .await
            .unwrap();
        if (200..300).contains(&status) {
            return v;
        }
        assert_eq!(status, 503, "POST {path}: {status} {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("POST {path} stayed unavailable")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_moves_through_several_hosts_are_each_counted_once_in_the_stats() {
    let Some(db) = TempDatabase::create() else {
        return;
    };
    let url = db.url();
    let exe = env!("CARGO_BIN_EXE_stagecraft-server");
    let dirs: Vec<_> = (0..HOSTS).map(|_| temp_dir()).collect();
    let mut hosts = Vec::new();
    for d in &dirs {
        hosts.push(spawn(exe, d.path(), &url, &[], &[]).await);
    }
    let first = &hosts[0];
    first.upload("effector", "effector").await;
    let binding = first
        .post(
            "/v1/bindings",
            json!({"pipeline": "leads", "module": "effector", "version": 1, "mode": "inline",
                   "triggers": [{"on": "stage_changed"}],
                   "config": {"field": "moved", "value": true},
                   "grants": {"fields": ["moved"]}}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();

    let hosts = Arc::new(hosts);
    let mut clients = Vec::new();
    for n in 0..CLIENTS {
        let hosts = hosts.clone();
        clients.push(tokio::spawn(async move {
            let mut moved = 0u64;
            for i in 0..LEADS {
                let h = &hosts[(n + i) % HOSTS];
                let lead = send(
                    h,
                    "/v1/records",
                    json!({"kind": "lead", "name": format!("L{n}-{i}")}),
                )
                .await;
                let id = lead["id"].as_str().unwrap().to_string();
                for (k, stage) in ["contacted", "qualified"].into_iter().enumerate() {
                    let h = &hosts[(n + i + k + 1) % HOSTS];
                    let r = send(
                        h,
                        &format!("/v1/records/{id}/stage"),
                        json!({"stage": stage}),
                    )
                    .await;
                    assert_eq!(r["custom"]["moved"], json!(true), "the inline run applied");
                    moved += 1;
                }
            }
            moved
        }));
    }
    let mut moves = 0;
    for c in clients {
        moves += c.await.unwrap();
    }
    assert_eq!(moves, (CLIENTS * LEADS * 2) as u64);

    // Every acknowledged move ran the inline binding once, in its own commit: every host's
    // stats count each run exactly once (read twice: the first read folds the deltas).
    for round in 0..2 {
        for h in hosts.iter() {
            let b = h.get(&format!("/v1/bindings/{binding}/stats")).await;
            assert_eq!(b["runs"], json!(moves), "binding stats, read {round}: {b}");
            assert_eq!(b["outcomes"]["ok"], json!(moves), "{b}");
            let m = h.get("/v1/modules/effector/stats").await;
            assert_eq!(m["runs"], json!(moves), "module stats, read {round}: {m}");
        }
    }
    let left = db.count("SELECT count(*) FROM rollup_deltas");
    assert!(
        left < 2 * 64,
        "reading the stats folded the deltas it found ({left} left)"
    );
}

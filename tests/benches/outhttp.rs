//! What one outbound HTTP call costs a module (issue 20): a dry-run of the `caller` fixture
//! with one live call to a loopback server, against the same dry-run with no call, against
//! the same GET made by the host directly (reqwest, a fresh connection each time, as the
//! sandbox's client makes). `cargo bench -p stagecraft-tests --bench outhttp` runs the full
//! counts; `cargo test --bench outhttp` (or `-- --smoke`) tiny ones, timing nothing.

#![allow(clippy::unwrap_used)]

#[path = "../tests/outhttp/common.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{config, get, Remote};
use stagecraft_tests::{json, temp_dir, Server, ADMIN_KEY};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--smoke");
    let n = if full { 500 } else { 5 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = temp_dir();
        let s = Server::start_with(config(dir.path(), true)).await;
        let remote = Remote::start().await;
        s.upload_guest(ADMIN_KEY, "caller", "caller").await;
        let lead = s.record(ADMIN_KEY, json!({"kind": "lead", "name": "Ada"})).await;
        let grants = json!({"http": remote.grant()});
        let url = remote.url("/ok");
        let dry = |calls: serde_json::Value| {
            json!({"record": lead["id"], "grants": grants, "live": true, "config": {"calls": calls}})
        };
        let time = |body: serde_json::Value| {
            let s = &s;
            async move {
                let mut v = Vec::new();
                for _ in 0..n {
                    let t = Instant::now();
                    let r = s.dry_run(ADMIN_KEY, "caller", 1, body.clone()).await;
                    v.push(t.elapsed());
                    assert_eq!(r.body["outcome"]["kind"], "ok", "{:?}", r.body);
                }
                median(v)
            }
        };
        let none = time(dry(json!([]))).await;
        let one = time(dry(json!([get(url.clone())]))).await;
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let mut direct = Vec::new();
        for _ in 0..n {
            let t = Instant::now();
            let r = client.get(&url).send().await.unwrap();
            let _ = r.bytes().await.unwrap();
            direct.push(t.elapsed());
        }
        let direct = median(direct);
        let call = one.saturating_sub(none);
        println!(
            "# Outbound HTTP ({} run, {} build, {n} each, medians)",
            if full { "full" } else { "smoke" },
            if cfg!(debug_assertions) { "debug" } else { "release" }
        );
        println!("dry-run, no call:              {:>9.3} ms", none.as_secs_f64() * 1e3);
        println!("dry-run, one loopback call:    {:>9.3} ms", one.as_secs_f64() * 1e3);
        println!("  so one call from a run:      {:>9.3} ms", call.as_secs_f64() * 1e3);
        println!("the same GET by the host:      {:>9.3} ms", direct.as_secs_f64() * 1e3);
        println!(
            "  ratio (run's call / host's):  {:>8.1}x",
            call.as_secs_f64() / direct.as_secs_f64().max(1e-9)
        );
    });
}

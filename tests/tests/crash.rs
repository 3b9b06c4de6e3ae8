//! Kill -9 while background work is in flight, restart on the same data dir: every accepted
//! event is processed, and its effects applied exactly once.

#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use stagecraft_tests::{eventually, json, temp_dir, ADMIN_KEY};
use tokio::process::{Child, Command};

/// The real server as a child process; killed (SIGKILL) when dropped.
struct Proc {
    child: Child,
    base: String,
}

async fn spawn(dir: &std::path::Path) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stagecraft-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("STAGECRAFT_BOOTSTRAP_KEY", ADMIN_KEY)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the server");
    let base = stagecraft_tests::listening(&mut child).await;
    Proc { child, base }
}

async fn call(
    c: &reqwest::Client,
    p: &Proc,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let mut r = c
        .request(method, format!("{}{path}", p.base))
        .bearer_auth(ADMIN_KEY);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.expect("request");
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.unwrap_or(serde_json::Value::Null)
}

#[tokio::test]
async fn sigkill_mid_backlog_loses_nothing_and_applies_once() {
    const LEADS: usize = 40;
    let dir = temp_dir();
    let c = reqwest::Client::new();
    let mut p = spawn(dir.path()).await;
    let up = c
        .post(format!("{}/v1/modules/effector/versions", p.base))
        .bearer_auth(ADMIN_KEY)
        .body(stagecraft_tests::guest("effector"))
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 201);
    // Background runs that spin until their deadline (5 s each) hold the tenant's two job
    // lanes, so the backlog below waits in the queue and is in flight when the process dies,
    // however fast the machine. They are queued first; their binding is deleted once the
    // backlog is queued, so the rest of them (and, after the restart, the two that were
    // running) are skipped. A slow machine only keeps more of them running.
    upload(&c, &p, "spin", "spin").await;
    let holder = call(
        &c,
        &p,
        reqwest::Method::POST,
        "/v1/records",
        Some(json!({"kind": "lead", "name": "Holder"})),
    )
    .await;
    let spin = call(
        &c,
        &p,
        reqwest::Method::POST,
        "/v1/bindings",
        Some(json!({
        "pipeline": "leads", "module": "spin", "version": 1,
        "triggers": [{"on": "inbound", "name": "hold"}]})),
    )
    .await;
    for _ in 0..6 {
        call(
            &c,
            &p,
            reqwest::Method::POST,
            "/v1/events",
            Some(json!({"name": "hold", "record": holder["id"]})),
        )
        .await;
    }
    slots_in_use(&c, &p, 2, "the spinners hold the job lanes").await;
    let binding = call(&c, &p, reqwest::Method::POST, "/v1/bindings", Some(json!({
        "pipeline": "leads", "module": "effector", "version": 1, "triggers": [{"on": "created"}],
        "config": {"field": "processed", "value": true, "channel": "notify", "to": "ann", "work": 20_000_000},
        "grants": {"fields": ["processed"], "channels": ["notify"]}}))).await;
    let bid = binding["id"].as_str().unwrap().to_string();
    let mut ids = Vec::new();
    for i in 0..LEADS {
        let r = call(
            &c,
            &p,
            reqwest::Method::POST,
            "/v1/records",
            Some(json!({"kind": "lead", "name": format!("L{i}")})),
        )
        .await;
        ids.push(r["id"].as_str().unwrap().to_string());
    }
    let spin_id = spin["id"].as_str().unwrap();
    let r = c
        .delete(format!("{}/v1/bindings/{spin_id}", p.base))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    p.child.kill().await.expect("SIGKILL");
    // What the process left on disk: the backlog's jobs, still queued.
    let in_flight = {
        let db = sled::open(dir.path().join("db")).unwrap();
        let data = db.open_tree("data").unwrap();
        data.scan_prefix("job/default/")
            .filter(|kv| {
                let (k, v) = kv.as_ref().unwrap();
                let job =
                    stagecraft::store::stored_as_v1_json(std::str::from_utf8(k).unwrap(), &v[..])
                        .unwrap();
                job["binding"] == bid.as_str()
            })
            .count()
    };
    eprintln!("{in_flight} of {LEADS} jobs were queued when the process died");
    assert!(
        in_flight > 0,
        "work was still in flight when the process died"
    );

    let p = spawn(dir.path()).await;
    eventually(
        "every accepted event processed after the restart",
        1200,
        || {
            let c = c.clone();
            let base = p.base.clone();
            let bid = bid.clone();
            async move {
                let r: serde_json::Value = c
                    .get(format!("{base}/v1/runs?binding={bid}&limit=200"))
                    .bearer_auth(ADMIN_KEY)
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                (r["runs"].as_array()?.len() >= LEADS).then_some(())
            }
        },
    )
    .await;
    let runs = call(
        &c,
        &p,
        reqwest::Method::GET,
        &format!("/v1/runs?binding={bid}&limit=200"),
        None,
    )
    .await;
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), LEADS, "exactly one run per event");
    assert!(runs.iter().all(|r| r["outcome"]["kind"] == "ok"));
    for id in &ids {
        let r = call(
            &c,
            &p,
            reqwest::Method::GET,
            &format!("/v1/records/{id}"),
            None,
        )
        .await;
        assert_eq!(r["custom"]["processed"], true, "{id}");
        assert_eq!(r["version"], 2, "{id}: effects applied exactly once");
        let ev = call(
            &c,
            &p,
            reqwest::Method::GET,
            &format!("/v1/events?record={id}"),
            None,
        )
        .await;
        let updates = ev["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "updated")
            .count();
        assert_eq!(updates, 1, "{id}");
    }
    let msgs = call(&c, &p, reqwest::Method::GET, "/v1/messages", None).await;
    assert_eq!(
        msgs["messages"].as_array().unwrap().len(),
        LEADS,
        "one message per run, none twice"
    );
}

/// Waits until the server's metrics show at least `n` run slots in use.
async fn slots_in_use(c: &reqwest::Client, p: &Proc, n: u32, what: &str) {
    eventually(what, 1200, || {
        let (c, url) = (c.clone(), format!("{}/metrics", p.base));
        async move {
            let text = c.get(url).send().await.ok()?.text().await.ok()?;
            let in_use = text
                .lines()
                .find_map(|l| l.strip_prefix("stagecraft_run_slots_in_use "))?
                .trim()
                .parse::<f64>()
                .ok()?;
            (in_use >= f64::from(n)).then_some(())
        }
    })
    .await;
}

async fn upload(c: &reqwest::Client, p: &Proc, name: &str, guest: &str) {
    let up = c
        .post(format!("{}/v1/modules/{name}/versions", p.base))
        .bearer_auth(ADMIN_KEY)
        .body(stagecraft_tests::guest(guest))
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 201);
}

/// SIGTERM while guests wait and spin: background runs that sleep (for ~30 years), dry-runs
/// spinning until their deadline, more dry-runs queued for a slot. The process still exits
/// cleanly within a bound, and after a restart nothing is stuck.
#[tokio::test]
async fn sigterm_stops_the_server_within_a_bound_whatever_guests_do() {
    const JOBS: usize = 6;
    let dir = temp_dir();
    let c = reqwest::Client::new();
    let mut p = spawn(dir.path()).await;
    upload(&c, &p, "sleeper", "sleeper").await;
    upload(&c, &p, "spin", "spin").await;
    let binding = call(
        &c,
        &p,
        reqwest::Method::POST,
        "/v1/bindings",
        Some(json!({
        "pipeline": "leads", "module": "sleeper", "version": 1, "triggers": [{"on": "created"}],
        "config": {"do": "sleep", "seconds": 1_000_000_000u64}})),
    )
    .await;
    let bid = binding["id"].as_str().unwrap().to_string();
    let mut target = String::new();
    for i in 0..JOBS {
        let r = call(
            &c,
            &p,
            reqwest::Method::POST,
            "/v1/records",
            Some(json!({"kind": "lead", "name": format!("S{i}")})),
        )
        .await;
        target = r["id"].as_str().unwrap().to_string();
    }
    // The sleepers' runs end (their waits take no real time).
    let runs_of = |base: String| {
        let (c, bid) = (c.clone(), bid.clone());
        async move {
            let r: serde_json::Value = c
                .get(format!("{base}/v1/runs?binding={bid}&limit=100"))
                .bearer_auth(ADMIN_KEY)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            Some(r["runs"].as_array()?.len())
        }
    };
    eventually("a sleeping background run ends", 1200, || {
        let f = runs_of(p.base.clone());
        async move { f.await.filter(|n| *n > 0) }
    })
    .await;
    // Dry-runs spinning until their deadline, and more than the tenant's share of them.
    for _ in 0..12 {
        let (c, url) = (
            c.clone(),
            format!("{}/v1/modules/spin/versions/1/dry-run", p.base),
        );
        let target = target.clone();
        tokio::spawn(async move {
            let _ = c
                .post(url)
                .bearer_auth(ADMIN_KEY)
                .json(&json!({"record": target}))
                .send()
                .await;
        });
    }
    // Wait until they hold the tenant's share of run slots.
    slots_in_use(&c, &p, 8, "the dry-runs hold their slots").await;
    let pid = p.child.id().expect("pid").to_string();
    let started = std::time::Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let exited = tokio::time::timeout(Duration::from_secs(60), p.child.wait())
        .await
        .expect("the server exits after SIGTERM")
        .expect("wait");
    let took = started.elapsed();
    eprintln!("SIGTERM to exit: {took:?}");
    assert!(exited.success(), "{exited:?}");
    // Grace for requests (5 s) + grace for the workers (5 s) + room for a loaded machine.
    assert!(took < Duration::from_secs(20), "shutdown took {took:?}");

    // After a restart every job finishes; none holds a slot for good.
    let p = spawn(dir.path()).await;
    eventually("every job ran after the restart", 1200, || {
        let f = runs_of(p.base.clone());
        async move { f.await.filter(|n| *n >= JOBS) }
    })
    .await;
}

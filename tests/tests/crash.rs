//! Kill -9 while background work is in flight, restart on the same data dir: every accepted
//! event is processed, and its effects applied exactly once.

#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use stagecraft_tests::{eventually, json, temp_dir, ADMIN_KEY};
use tokio::io::{AsyncBufReadExt, BufReader};
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
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(a) = line.strip_prefix("listening on ") {
                return a.to_string();
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("the server starts listening");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Proc {
        child,
        base: format!("http://{addr}"),
    }
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
    let before = call(
        &c,
        &p,
        reqwest::Method::GET,
        &format!("/v1/runs?binding={bid}&limit=200"),
        None,
    )
    .await;
    let done_before = before["runs"].as_array().unwrap().len();
    p.child.kill().await.expect("SIGKILL");
    assert!(
        done_before < LEADS,
        "work was still in flight when the process died ({done_before} of {LEADS} done)"
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

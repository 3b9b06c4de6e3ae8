//! `stagecraft serve --demo` shows tasks and comments within its first minute (#19): the real
//! server binary, started on an empty data dir, read back through the HTTP API only. The
//! demo's SLA deadline is 45 s, so the ticket's comment is the last to appear; the wait is
//! bounded (a loaded machine gets room past the minute, never an endless loop).

#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use stagecraft_tests::{temp_dir, ADMIN_KEY};
use tokio::process::Command;

/// `GET path` with the bootstrap key; the JSON body of a 200.
async fn get(c: &reqwest::Client, base: &str, path: &str) -> Value {
    let resp = c
        .get(format!("{base}{path}"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

/// The first record of `query` named `name`, if there is one yet.
async fn named(c: &reqwest::Client, base: &str, query: &str, name: &str) -> Option<Value> {
    let body = get(c, base, &format!("/v1/records?{query}&limit=500")).await;
    body["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
}

/// The timeline entries of `record` of `kind` (`comment`, `task`, `event`).
async fn timeline(c: &reqwest::Client, base: &str, record: &str, kind: &str) -> Vec<Value> {
    let body = get(c, base, &format!("/v1/records/{record}/timeline?limit=500")).await;
    body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == kind)
        .map(|e| e[kind].clone())
        .collect()
}

#[tokio::test]
async fn serve_demo_shows_tasks_and_comments_in_its_first_minute() {
    let dir = temp_dir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stagecraft-server"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("STAGECRAFT_BOOTSTRAP_KEY", ADMIN_KEY)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the server");
    let base = stagecraft_tests::listening(&mut child).await;
    let c = reqwest::Client::new();

    // Polled every 250 ms for at most 180 s (the demo's own clock is 45 s; the rest is room
    // for a loaded machine).
    let mut seen: Option<(Value, Value, Value, Value)> = None;
    for _ in 0..720 {
        let tasks = get(&c, &base, "/v1/tasks?limit=500").await["tasks"]
            .as_array()
            .unwrap()
            .clone();
        let title = |t: &str| tasks.iter().find(|x| x["title"] == t).cloned();
        let call = title("Call within 24 h");
        let kickoff = title("Kickoff call with Grace Hopper");
        let ticket = named(&c, &base, "pipeline=support", "Printer on fire").await;
        let comment = match &ticket {
            Some(t) => timeline(&c, &base, t["id"].as_str().unwrap(), "comment")
                .await
                .into_iter()
                .next(),
            None => None,
        };
        if let (Some(call), Some(kickoff), Some(ticket), Some(comment)) =
            (call, kickoff, ticket, comment)
        {
            seen = Some((call, kickoff, ticket, comment));
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (call, kickoff, ticket, comment) =
        seen.expect("the demo's call task, kickoff task and ticket comment within 180 s");

    // lead-scoring's call task is for the owner it assigned to Ada, on Ada.
    let ada = named(&c, &base, "kind=lead&pipeline=leads", "Ada Lovelace")
        .await
        .unwrap();
    assert_eq!(ada["owner"], "ann", "{ada}");
    assert_eq!(call["record"], ada["id"], "{call}");
    assert_eq!(call["assignee"], "ann", "{call}");
    assert_eq!(call["status"], "open", "{call}");
    assert_eq!(call["created_by"]["type"], "run", "{call}");

    // onboarding's kickoff task is on the won deal, for its owner.
    let deal = named(&c, &base, "kind=deal", "Acme rollout").await.unwrap();
    assert_eq!(kickoff["record"], deal["id"], "{kickoff}");
    assert_eq!(kickoff["assignee"], "ann", "{kickoff}");
    let on_deal = timeline(&c, &base, deal["id"].as_str().unwrap(), "task").await;
    assert!(
        on_deal.iter().any(|t| t["id"] == kickoff["id"]),
        "{on_deal:?}"
    );

    // sla-escalation's comment is on the ticket it escalated.
    assert_eq!(comment["record"], ticket["id"], "{comment}");
    let body = comment["body"].as_str().unwrap();
    assert!(body.starts_with("Response SLA breached"), "{body}");
    let ticket = get(
        &c,
        &base,
        &format!("/v1/records/{}", ticket["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(ticket["stage"], "escalated", "{ticket}");

    // lead-to-deal converted Ada (qualified by lead-scoring): a deal linked to her new
    // contact and company, her discovery call, and a comment on her timeline.
    // Background: it may land just after the rest (at most 60 s more, polled).
    let mut ada = ada;
    for _ in 0..240 {
        if ada["custom"]["converted_deal"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        ada = named(&c, &base, "kind=lead&pipeline=leads", "Ada Lovelace")
            .await
            .unwrap();
    }
    let deal_id = ada["custom"]["converted_deal"]
        .as_str()
        .unwrap_or_else(|| panic!("Ada was converted: {ada}"));
    let new_deal = get(&c, &base, &format!("/v1/records/{deal_id}")).await;
    assert_eq!(new_deal["name"], "Ada Lovelace deal", "{new_deal}");
    let contact = get(
        &c,
        &base,
        &format!("/v1/records/{}", new_deal["contact"].as_str().unwrap()),
    )
    .await;
    assert_eq!(contact["email"], "ada@analytical.example", "{contact}");
    let company = get(
        &c,
        &base,
        &format!("/v1/records/{}", new_deal["company"].as_str().unwrap()),
    )
    .await;
    assert_eq!(company["name"], "Analytical Engines", "{company}");
    let ada_comments = timeline(&c, &base, ada["id"].as_str().unwrap(), "comment").await;
    assert!(
        ada_comments
            .iter()
            .any(|c| c["body"].as_str().unwrap().starts_with("Converted:")),
        "{ada_comments:?}"
    );
    let discovery = timeline(&c, &base, deal_id, "task").await;
    assert!(
        discovery
            .iter()
            .any(|t| t["title"] == "Discovery call with Ada Lovelace"),
        "{discovery:?}"
    );

    // Every demo run so far succeeded (the webhooks to port 9 fail in delivery, not in runs).
    let runs = get(&c, &base, "/v1/runs?limit=200").await;
    let failed: Vec<&Value> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"]["kind"] != "ok")
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    drop(child);
}

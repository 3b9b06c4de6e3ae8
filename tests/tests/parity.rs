//! The SDK's `MockHost` against the real host: the same rule source (the `parity` guest,
//! `tests/guests/rust/parity/src/rule.rs`) makes the same calls natively on the mock and as a
//! component on a real server, and every call and every run must end the same way. A rule
//! that passes its native tests must not be refused in production for a reason the tests
//! could not see.

#![allow(clippy::unwrap_used)]

#[path = "../guests/rust/parity/src/rule.rs"]
mod rule;

use reqwest::StatusCode;
use serde_json::Value;
use stagecraft_sdk::testing::MockHost;
use stagecraft_sdk::{Event, Level};
use stagecraft_tests::{guest, json, temp_dir, Server, ADMIN_KEY};

/// How a run went: its outcome's kind and each call's verdict, in order.
#[derive(Debug, PartialEq)]
struct Ending {
    outcome: String,
    verdicts: Vec<String>,
}

fn verdicts<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<String> {
    lines
        .filter(|l| l.starts_with("op "))
        .map(str::to_string)
        .collect()
}

async fn on_host(
    s: &Server,
    key: &str,
    record: &str,
    ops: &Value,
    backward: bool,
    actions: &[&str],
) -> Ending {
    let r = s
        .dry_run(
            key,
            "parity",
            1,
            json!({"record": record, "config": {"ops": ops},
                   "grants": {"fields": ["*"], "channels": [], "backward": backward,
                              "actions": actions}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let logs = r.body["logs"].as_array().unwrap();
    Ending {
        outcome: r.body["outcome"]["kind"].as_str().unwrap().to_string(),
        verdicts: verdicts(logs.iter().map(|l| l["message"].as_str().unwrap())),
    }
}

/// Pipelines (id, stages in order) as the mock knows them (it knows no pipeline kinds).
type Pipelines<'a> = &'a [(String, Vec<&'a str>)];

fn on_mock(
    records: &[&Value],
    pipelines: Pipelines<'_>,
    ops: &Value,
    backward: bool,
    actions: &[&str],
) -> Ending {
    let records: Vec<stagecraft_sdk::Record> = records
        .iter()
        .map(|r| serde_json::from_value((*r).clone()).unwrap())
        .collect();
    let record = records[0].clone();
    let mut host = MockHost::new().with_config_value(json!({ "ops": ops }));
    for r in records {
        host = host.with_record(r);
    }
    for (id, stages) in pipelines {
        host = host.with_pipeline(id.clone(), stages);
    }
    for a in actions {
        host = host.with_grant(a);
    }
    if backward {
        host = host.with_backward_grant();
    }
    let result = host.run::<rule::Parity>(&Event::created(record));
    let outcome = match result {
        Ok(()) => "ok".to_string(),
        Err(e) if e.starts_with("denied: ") => "denied".to_string(),
        Err(e) => format!("guest_error: {e}"),
    };
    let lines = host
        .logs
        .iter()
        .filter(|(level, _)| *level == Level::Info)
        .map(|(_, m)| m.as_str());
    Ending {
        outcome,
        verdicts: verdicts(lines),
    }
}

#[tokio::test]
async fn mock_host_and_real_host_end_every_call_and_run_alike() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let dev = s.key(ADMIN_KEY, "developer").await;
    assert_eq!(
        s.upload(&dev, "parity", guest("parity")).await.status,
        StatusCode::CREATED
    );
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Ada"}))
        .await;
    let contact = s
        .record(
            ADMIN_KEY,
            json!({"kind": "contact", "name": "Bob", "email": "bob@example.com"}),
        )
        .await;
    let pipeline = s
        .get(
            &format!("/v1/pipelines/{}", lead["pipeline"].as_str().unwrap()),
            ADMIN_KEY,
        )
        .await
        .body;
    let stages: Vec<&str> = pipeline["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(stages.len() >= 3, "{pipeline}");
    let (first, second) = (stages[0], stages[1]);
    let deals = s.get("/v1/pipelines/deals", ADMIN_KEY).await.body;
    let deal_stages: Vec<&str> = deals["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let pipelines = [
        (
            lead["pipeline"].as_str().unwrap().to_string(),
            stages.clone(),
        ),
        ("deals".to_string(), deal_stages),
    ];

    let cases = [
        (&lead, json!([{"move": second}]), false),
        (&lead, json!([{"move": first}]), false),
        (&lead, json!([{"move": "mars"}]), false),
        // A denial the rule handles still fails the run, on both.
        (
            &lead,
            json!([{"move": "mars"}, {"set": "score", "value": 1}]),
            false,
        ),
        (&lead, json!([{"move": second}, {"move": first}]), false),
        (&lead, json!([{"move": second}, {"move": first}]), true),
        (&contact, json!([{"move": first}]), false),
        (&lead, json!([{"set": "score", "value": 70}]), false),
        (&lead, json!([{"set": "email", "value": "nope"}]), false),
        (&lead, json!([{"set": "stage", "value": first}]), false),
        (&lead, json!([{"set": "amount", "value": 10}]), false),
        (&lead, json!([{"set": "bad name", "value": 1}]), false),
        (
            &contact,
            json!([{"set": "contact", "value": "rec_x"}]),
            false,
        ),
        (
            &lead,
            json!([{"set": "score", "value": null}, {"move": second}]),
            false,
        ),
    ];
    let mut denied = 0;
    for (record, ops, backward) in &cases {
        let id = record["id"].as_str().unwrap();
        let host = on_host(&s, &dev, id, ops, *backward, &[]).await;
        let mock = on_mock(&[record], &pipelines, ops, *backward, &[]);
        assert_eq!(host, mock, "ops {ops} (backward {backward}) on {id}");
        denied += usize::from(host.outcome == "denied");
    }
    // The cases do exercise both endings.
    assert!(denied >= 4, "{denied} denied runs");

    // Host API 0.2: creating records and tasks, completing tasks, commenting. `company` is
    // a stored company the cases link to (or, wrongly, link a contact field to).
    let company = s
        .record(ADMIN_KEY, json!({"kind": "company", "name": "Acme"}))
        .await;
    let cid = company["id"].as_str().unwrap();
    let all: &[&str] = &[
        "create:lead",
        "create:contact",
        "create:company",
        "create:deal",
        "create:task",
        "complete:task",
        "comment",
    ];
    let creates: Vec<(Value, &[&str])> = vec![
        (json!([{"create": "company", "name": "Engines"}]), all),
        (json!([{"create": "company"}]), &["create:deal"]),
        (
            json!([{"create": "company"}, {"create": "contact", "fields": {"company": "$last"}}]),
            all,
        ),
        (
            json!([{"create": "deal", "pipeline": "deals", "fields": {"company": cid, "amount": 5}}]),
            all,
        ),
        (json!([{"create": "deal", "pipeline": null}]), all),
        (
            json!([{"create": "deal", "pipeline": "deals", "stage": "mars"}]),
            all,
        ),
        (json!([{"create": "contact", "pipeline": "deals"}]), all),
        (
            json!([{"create": "contact", "fields": {"email": "nope"}}]),
            all,
        ),
        (
            json!([{"create": "contact", "fields": {"contact": cid}}]),
            all,
        ),
        (
            json!([{"create": "deal", "pipeline": "deals", "fields": {"contact": cid}}]),
            all,
        ),
        (
            json!([{"create": "company", "fields": {"name": "twice"}}]),
            all,
        ),
        (json!([{"create": "company", "fields": {"id": "x"}}]), all),
        (
            json!([{"task": "Call", "due_in": 3600, "assignee": "u1", "tags": ["call"]}]),
            all,
        ),
        (json!([{"task": "Call"}]), &["comment"]),
        (json!([{"task": "x".repeat(256)}]), all),
        (
            json!([{"task": "t", "description": "d".repeat(16 * 1024 + 1)}]),
            all,
        ),
        (json!([{"task": "t", "due_in": 366 * 86400 + 1}]), all),
        (json!([{"task": "t", "tags": ["no spaces"]}]), all),
        (json!([{"task": "t", "assignee": ""}]), all),
        (json!([{"task": "t", "record": "rec_nope"}]), all),
        (json!([{"task": "t", "record": cid}]), all),
        (
            json!([{"task": "t"}, {"complete": "$last"}, {"complete": "$last"}]),
            all,
        ),
        (
            json!([{"task": "t"}, {"complete": "$last"}]),
            &["create:task"],
        ),
        (json!([{"complete": "tsk_nope"}]), all),
        (json!([{"comment": "hello"}]), all),
        (json!([{"comment": " "}]), all),
        (json!([{"comment": "b".repeat(16 * 1024 + 1)}]), all),
        (json!([{"comment": "hello"}]), &["create:task"]),
    ];
    let mut denied = 0;
    let mut refused = 0;
    for (ops, actions) in &creates {
        let id = lead["id"].as_str().unwrap();
        let host = on_host(&s, &dev, id, ops, false, actions).await;
        let mock = on_mock(&[&lead, &company], &pipelines, ops, false, actions);
        assert_eq!(host, mock, "ops {ops} (grants {actions:?})");
        denied += usize::from(host.outcome == "denied");
        refused += host
            .verdicts
            .iter()
            .filter(|v| !v.ends_with(": ok"))
            .count();
    }
    assert!(
        denied >= 4 && refused >= 15,
        "{denied} denied, {refused} refused"
    );
    s.stop().await;
}

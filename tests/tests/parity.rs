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

async fn on_host(s: &Server, key: &str, record: &str, ops: &Value, backward: bool) -> Ending {
    let r = s
        .dry_run(
            key,
            "parity",
            1,
            json!({"record": record, "config": {"ops": ops},
                   "grants": {"fields": ["*"], "channels": [], "backward": backward}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let logs = r.body["logs"].as_array().unwrap();
    Ending {
        outcome: r.body["outcome"]["kind"].as_str().unwrap().to_string(),
        verdicts: verdicts(logs.iter().map(|l| l["message"].as_str().unwrap())),
    }
}

fn on_mock(record: &Value, stages: &[&str], ops: &Value, backward: bool) -> Ending {
    let record: stagecraft_sdk::Record = serde_json::from_value(record.clone()).unwrap();
    let mut host = MockHost::new()
        .with_config_value(json!({ "ops": ops }))
        .with_record(record.clone());
    if let Some(p) = &record.pipeline {
        host = host.with_pipeline(p.clone(), stages);
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
        let host = on_host(&s, &dev, id, ops, *backward).await;
        let mock = on_mock(record, &stages, ops, *backward);
        assert_eq!(host, mock, "ops {ops} (backward {backward}) on {id}");
        denied += usize::from(host.outcome == "denied");
    }
    // The cases do exercise both endings.
    assert!(denied >= 4, "{denied} denied runs");
    s.stop().await;
}

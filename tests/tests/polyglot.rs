//! The lead-scoring rule in three languages — the Rust example, and its Python and JavaScript
//! ports under tests/guests — makes the same effects and the same score line on the same
//! records, including the host API 0.2 call task each creates for a lead it assigns. The
//! benchmark compares their cost, so this is what makes that comparison fair.

#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::Value;
use stagecraft_tests::{json, temp_dir, Server, ADMIN_KEY};

fn rust_lead_scoring() -> Vec<u8> {
    stagecraft::demo::EXAMPLES
        .iter()
        .find(|(n, _)| *n == "lead-scoring")
        .map(|(_, b)| b.to_vec())
        .unwrap()
}

/// The effects without message ids (they derive from the run, which differs per module).
fn effects(r: &Value) -> Value {
    let mut e = r["effects"].clone();
    for x in e.as_array_mut().unwrap() {
        if let Some(m) = x.as_object_mut() {
            m.remove("id");
        }
    }
    e
}

fn score_line(r: &Value) -> String {
    r["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap_or_default().to_string())
        .find(|m| m.contains(" scores "))
        .unwrap_or_default()
}

#[tokio::test]
async fn lead_scoring_does_the_same_in_rust_python_and_javascript() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    for (module, bytes) in [
        ("ls-rust", rust_lead_scoring()),
        ("ls-python", stagecraft_tests::guest("python-lead-scoring")),
        ("ls-js", stagecraft_tests::guest("js-lead-scoring")),
    ] {
        let r = s.upload(ADMIN_KEY, module, bytes).await;
        assert_eq!(r.status, StatusCode::CREATED, "{module}: {:?}", r.body);
    }
    let busy = s
        .record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": "Busy", "pipeline": "leads", "owner": "ann"}),
        )
        .await;
    assert_eq!(busy["owner"], "ann");
    let leads = [
        // Hot: title + size + referral = 80; assigned to bob (ann has a lead), qualified.
        json!({"name": "Ada", "email": "ada@acme.io",
               "custom": {"job_title": "CTO", "company_size": 2000, "source": "Referral"}}),
        // Cold: gmail only.
        json!({"name": "Bob", "email": "bob@gmail.com", "custom": {"job_title": "intern"}}),
        // Ties between title keys ("vp" and "head" both match; the higher wins).
        json!({"name": "Cy", "email": "cy@x.org",
               "custom": {"job_title": "VP, Head of Ops", "company_size": 150, "source": "webinar"}}),
        // Already scored right: no field write.
        json!({"name": "Di", "custom": {"company_size": 5, "score": 0}}),
        // Wrong types are ignored alike.
        json!({"name": "Ed", "custom": {"company_size": "big", "job_title": 7}}),
    ];
    let configs = [
        json!({"team": ["ann", "bob"], "call_within_hours": 24}),
        json!({"team": ["ann", "bob", "cy"], "assign": "round_robin", "threshold": 0}),
        json!({}),
    ];
    let mut compared = 0;
    let mut tasks = 0;
    for body in leads {
        let mut body = body;
        body["kind"] = json!("lead");
        body["pipeline"] = json!("leads");
        let lead = s.record(ADMIN_KEY, body).await;
        let id = lead["id"].as_str().unwrap();
        for config in &configs {
            let mut results = Vec::new();
            for module in ["ls-rust", "ls-python", "ls-js"] {
                let r = s
                    .dry_run(
                        ADMIN_KEY,
                        module,
                        1,
                        // One event time, so the tasks' due times match too.
                        json!({"record": id, "config": config,
                               "occurred_at": "2026-01-05T09:00:00Z",
                               "grants": {"fields": ["score", "owner"], "channels": ["notify"],
                                          "actions": ["create:task"]}}),
                    )
                    .await;
                assert_eq!(r.status, StatusCode::OK, "{module}: {:?}", r.body);
                assert_eq!(r.body["outcome"]["kind"], "ok", "{module}: {:?}", r.body);
                results.push((module, effects(&r.body), score_line(&r.body)));
            }
            let (_, rust_effects, rust_line) = &results[0];
            assert!(rust_line.contains(" scores "), "{rust_line}");
            for task in rust_effects
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["type"] == "create_task")
            {
                assert_eq!(task["title"], "Call within 24 h", "{task}");
                assert_eq!(task["due_at"], "2026-01-06T09:00:00Z", "{task}");
                tasks += 1;
            }
            for (module, e, line) in &results[1..] {
                assert_eq!(e, rust_effects, "{module} vs rust on {id} with {config}");
                assert_eq!(line, rust_line, "{module} vs rust on {id} with {config}");
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 15);
    assert_eq!(
        tasks, 2,
        "Ada and Cy, assigned under the first config, get call tasks"
    );
}

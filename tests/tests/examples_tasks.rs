//! What the examples and the Python and JavaScript fixtures create with host API 0.2, through
//! the real host (the examples as the host embeds them, the fixtures as tests/build.rs
//! builds them): lead-scoring's call task, onboarding's kickoff task, sla-escalation's
//! comment on the ticket it escalates, the movers' comments. Dry runs show each effect, and
//! without its grant each is denied by name.

#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::Value;
use stagecraft_tests::{guest, json, temp_dir, Response, Server, ADMIN_KEY};

fn example(name: &str) -> Vec<u8> {
    stagecraft::demo::EXAMPLES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| b.to_vec())
        .unwrap()
}

fn outcome(r: &Response) -> &str {
    r.body["outcome"]["kind"].as_str().unwrap_or_default()
}

/// The effects of `kind` (`create_task`, `comment`, …).
fn effects<'a>(r: &'a Response, kind: &str) -> Vec<&'a Value> {
    r.body["effects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == kind)
        .collect()
}

const AT: &str = "2026-03-02T09:00:00Z";

/// A dry run of `module`@1 on `record` with a synthetic event of `kind` at [`AT`].
async fn dry(
    s: &Server,
    module: &str,
    record: &str,
    kind: Value,
    config: Value,
    grants: Value,
) -> Response {
    let r = s
        .dry_run(
            ADMIN_KEY,
            module,
            1,
            json!({"record": record, "kind": kind, "occurred_at": AT, "config": config,
                   "grants": grants}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{module}: {:?}", r.body);
    r
}

async fn server(modules: &[(&str, Vec<u8>)]) -> (tempfile::TempDir, Server) {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    for (name, bytes) in modules {
        let r = s.upload(ADMIN_KEY, name, bytes.clone()).await;
        assert_eq!(r.status, StatusCode::CREATED, "{name}: {:?}", r.body);
    }
    (dir, s)
}

/// The denial names the grant, and nothing would apply.
fn denied(r: &Response, grant: &str) {
    assert_eq!(outcome(r), "denied", "{:?}", r.body);
    let message = r.body["outcome"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("{grant:?} grant")), "{message}");
}

#[tokio::test]
async fn lead_scoring_gives_the_owner_it_assigns_a_call_task() {
    let (_dir, s) = server(&[("lead-scoring", example("lead-scoring"))]).await;
    let lead = s
        .record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": "Ada", "email": "ada@engines.example",
                   "custom": {"job_title": "CTO", "company_size": 2000, "source": "referral"}}),
        )
        .await;
    let id = lead["id"].as_str().unwrap();
    let config = json!({"team": ["ann"], "call_within_hours": 24});
    let grants = |actions: Value| json!({"fields": ["score", "owner"], "channels": ["notify"], "actions": actions});
    let r = dry(
        &s,
        "lead-scoring",
        id,
        json!({"type": "created"}),
        config.clone(),
        grants(json!(["create:task"])),
    )
    .await;
    assert_eq!(outcome(&r), "ok", "{:?}", r.body);
    let tasks = effects(&r, "create_task");
    assert_eq!(tasks.len(), 1, "{:?}", r.body["effects"]);
    let t = tasks[0];
    assert_eq!(t["record"], id);
    assert_eq!(t["title"], "Call within 24 h");
    assert_eq!(t["assignee"], "ann");
    assert_eq!(t["priority"], "high");
    assert_eq!(t["tags"], json!(["call"]));
    assert_eq!(
        t["due_at"], "2026-03-03T09:00:00Z",
        "24 h after the event: {t}"
    );

    // Without the grant the run is denied by name; unconfigured, no task and no grant needed.
    let r = dry(
        &s,
        "lead-scoring",
        id,
        json!({"type": "created"}),
        config,
        grants(json!([])),
    )
    .await;
    denied(&r, "create:task");
    let r = dry(
        &s,
        "lead-scoring",
        id,
        json!({"type": "created"}),
        json!({"team": ["ann"]}),
        grants(json!([])),
    )
    .await;
    assert_eq!(outcome(&r), "ok", "{:?}", r.body);
    assert!(effects(&r, "create_task").is_empty());
    assert_eq!(effects(&r, "set_field").len(), 2, "score and owner");
    s.stop().await;
}

#[tokio::test]
async fn onboarding_creates_the_kickoff_task_on_the_first_win() {
    let (_dir, s) = server(&[("onboarding", example("onboarding"))]).await;
    let grace = s
        .record(
            ADMIN_KEY,
            json!({"kind": "contact", "name": "Grace Hopper", "email": "grace@navy.example"}),
        )
        .await;
    let deal = s
        .record(
            ADMIN_KEY,
            json!({"kind": "deal", "name": "Navy rollout", "amount": 9000, "currency": "USD",
                   "owner": "bob", "stage": "won", "contact": grace["id"]}),
        )
        .await;
    let id = deal["id"].as_str().unwrap();
    let won = json!({"type": "stage_changed", "from": "negotiation", "to": "won"});
    let config = json!({"kickoff_within_hours": 48, "product": "Stagecraft"});
    let grants = |actions: Value| json!({"fields": ["onboarding_step"], "channels": ["email"], "actions": actions});
    let r = dry(
        &s,
        "onboarding",
        id,
        won.clone(),
        config.clone(),
        grants(json!(["create:task"])),
    )
    .await;
    assert_eq!(outcome(&r), "ok", "{:?}", r.body);
    let tasks = effects(&r, "create_task");
    assert_eq!(tasks.len(), 1, "{:?}", r.body["effects"]);
    assert_eq!(tasks[0]["record"], id);
    assert_eq!(tasks[0]["title"], "Kickoff call with Grace Hopper");
    assert_eq!(tasks[0]["assignee"], "bob");
    assert_eq!(tasks[0]["due_at"], "2026-03-04T09:00:00Z");
    assert_eq!(tasks[0]["tags"], json!(["kickoff"]));
    assert_eq!(effects(&r, "queue_message").len(), 1, "the welcome mail");

    let r = dry(&s, "onboarding", id, won.clone(), config, grants(json!([]))).await;
    denied(&r, "create:task");

    // A deal that was onboarded before (its step is set) gets no second kickoff task.
    let r = s
        .patch(
            &format!("/v1/records/{id}"),
            ADMIN_KEY,
            json!({"version": deal["version"], "custom": {"onboarding_step": "check_in"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = dry(
        &s,
        "onboarding",
        id,
        won,
        json!({"kickoff_within_hours": 48}),
        grants(json!(["create:task"])),
    )
    .await;
    assert_eq!(outcome(&r), "ok", "{:?}", r.body);
    assert!(effects(&r, "create_task").is_empty(), "{:?}", r.body);
    s.stop().await;
}

#[tokio::test]
async fn sla_escalation_comments_on_the_ticket_it_escalates() {
    let (_dir, s) = server(&[("sla-escalation", example("sla-escalation"))]).await;
    let r = s
        .post(
            "/v1/pipelines",
            ADMIN_KEY,
            json!({"id": "support", "name": "Support", "kind": "lead", "stages": [
                {"id": "new", "name": "New", "semantic": "open"},
                {"id": "escalated", "name": "Escalated", "semantic": "open"},
                {"id": "resolved", "name": "Resolved", "semantic": "won"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let ticket = s
        .record(
            ADMIN_KEY,
            json!({"kind": "lead", "pipeline": "support", "name": "Printer on fire"}),
        )
        .await;
    let id = ticket["id"].as_str().unwrap();
    let due = json!({"type": "scheduled", "payload": {"sla": "response", "stage": "new"}});
    let config = json!({"response_seconds": 900, "on_call": "dana", "comment": true});
    let grants =
        |actions: Value| json!({"fields": ["owner", "sla_breached_at"], "actions": actions});
    let r = dry(
        &s,
        "sla-escalation",
        id,
        due.clone(),
        config.clone(),
        grants(json!(["comment"])),
    )
    .await;
    assert_eq!(outcome(&r), "ok", "{:?}", r.body);
    let comments = effects(&r, "comment");
    assert_eq!(comments.len(), 1, "{:?}", r.body["effects"]);
    assert_eq!(comments[0]["record"], id);
    assert_eq!(
        comments[0]["body"],
        format!(
            "Response SLA breached: still in \"new\" at 2026-03-02T09:00:00+00:00, 900s after \
             it started. Escalated to \"escalated\" and reassigned to dana."
        )
    );
    assert_eq!(effects(&r, "move_stage").len(), 1);

    let r = dry(&s, "sla-escalation", id, due, config, grants(json!([]))).await;
    denied(&r, "comment");
    s.stop().await;
}

#[tokio::test]
async fn python_and_javascript_rules_comment_and_create_tasks() {
    let (_dir, s) = server(&[
        ("py-mover", guest("python-mover")),
        ("js-mover", guest("js-mover")),
        ("py-scoring", guest("python-lead-scoring")),
        ("js-scoring", guest("js-lead-scoring")),
    ])
    .await;
    for (module, language) in [("py-mover", "python"), ("js-mover", "js")] {
        let lead = s
            .record(ADMIN_KEY, json!({"kind": "lead", "name": "Ada"}))
            .await;
        let id = lead["id"].as_str().unwrap();
        let config = json!({"target": "contacted", "comment": true});
        let r = dry(
            &s,
            module,
            id,
            json!({"type": "created"}),
            config.clone(),
            json!({"actions": ["comment"]}),
        )
        .await;
        assert_eq!(outcome(&r), "ok", "{module}: {:?}", r.body);
        let comments = effects(&r, "comment");
        assert_eq!(comments.len(), 1, "{module}: {:?}", r.body["effects"]);
        assert_eq!(comments[0]["record"], id);
        assert_eq!(
            comments[0]["body"],
            format!("Moved from new to contacted by {language}-mover.")
        );
        let r = dry(
            &s,
            module,
            id,
            json!({"type": "created"}),
            config,
            json!({"actions": []}),
        )
        .await;
        denied(&r, "comment");
    }
    let lead = s
        .record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": "Ada",
                   "custom": {"job_title": "CTO", "company_size": 2000, "source": "referral"}}),
        )
        .await;
    let id = lead["id"].as_str().unwrap();
    for module in ["py-scoring", "js-scoring"] {
        let r = dry(
            &s,
            module,
            id,
            json!({"type": "created"}),
            json!({"team": ["cy"], "call_within_hours": 2}),
            json!({"fields": ["score", "owner"], "channels": ["notify"],
                   "actions": ["create:task"]}),
        )
        .await;
        assert_eq!(outcome(&r), "ok", "{module}: {:?}", r.body);
        let tasks = effects(&r, "create_task");
        assert_eq!(tasks.len(), 1, "{module}: {:?}", r.body["effects"]);
        assert_eq!(tasks[0]["title"], "Call within 2 h");
        assert_eq!(tasks[0]["assignee"], "cy");
        assert_eq!(tasks[0]["due_at"], "2026-03-02T11:00:00Z");
    }
    s.stop().await;
}

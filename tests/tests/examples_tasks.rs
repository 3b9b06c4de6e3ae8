//! What the examples and the Python and JavaScript fixtures create with host API 0.2, through
//! the real host (the examples as the host embeds them, the fixtures as tests/build.rs
//! builds them): lead-scoring's call task, onboarding's kickoff task, sla-escalation's
//! comment on the ticket it escalates, the movers' comments. Dry runs show each effect, and
//! without its grant each is denied by name.

#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::Value;
use stagecraft_tests::{eventually, guest, json, temp_dir, Response, Server, ADMIN_KEY};

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

// Committed, through real bindings: what the examples create is stored and read back through
// the HTTP API (tasks, the record's timeline, the linked records).

/// The entries of `record`'s timeline of `kind` (`comment`, `task`, `event`).
async fn timeline(s: &Server, record: &str, kind: &str) -> Vec<Value> {
    let r = s
        .get(
            &format!("/v1/records/{record}/timeline?limit=500"),
            ADMIN_KEY,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == kind)
        .map(|e| e[kind].clone())
        .collect()
}

/// `GET /v1/tasks?{query}`'s tasks.
async fn tasks(s: &Server, query: &str) -> Vec<Value> {
    let r = s.get(&format!("/v1/tasks?{query}"), ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["tasks"].as_array().unwrap().clone()
}

/// Moves `record` to `stage`.
async fn move_to(s: &Server, record: &str, stage: &str) {
    let r = s
        .post(
            &format!("/v1/records/{record}/stage"),
            ADMIN_KEY,
            json!({"stage": stage}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{stage}: {:?}", r.body);
}

/// Waits until `module` has `n` runs on `record`, all ok.
async fn runs_done(s: &Server, module: &str, record: &str, n: usize) {
    let runs = eventually(&format!("{n} {module} runs on {record}"), 1200, || async {
        let runs = s
            .runs(ADMIN_KEY, &format!("record={record}&module={module}"))
            .await;
        (runs.len() >= n).then_some(runs)
    })
    .await;
    assert_eq!(runs.len(), n, "{runs:?}");
    assert!(
        runs.iter().all(|r| r["outcome"]["kind"] == "ok"),
        "{runs:?}"
    );
}

#[tokio::test]
async fn committed_lead_scoring_call_task_is_the_assigned_owners() {
    let (_dir, s) = server(&[("lead-scoring", example("lead-scoring"))]).await;
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "lead-scoring", "version": 1, "mode": "inline",
               "triggers": [{"on": "created"}],
               "config": {"team": ["ann"], "call_within_hours": 24},
               "grants": {"fields": ["score", "owner"], "channels": ["notify"],
                          "actions": ["create:task"]}}),
    )
    .await;
    let lead = s
        .record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": "Ada", "email": "ada@engines.example",
                   "custom": {"job_title": "CTO", "company_size": 2000, "source": "referral"}}),
        )
        .await;
    let id = lead["id"].as_str().unwrap();
    // Inline: committed with the record's creation.
    let anns = tasks(&s, "assignee=ann").await;
    assert_eq!(anns.len(), 1, "{anns:?}");
    let t = &anns[0];
    assert_eq!(t["record"], id);
    assert_eq!(t["title"], "Call within 24 h");
    assert_eq!(t["status"], "open");
    assert_eq!(t["tags"], json!(["call"]));
    assert_eq!(t["created_by"]["type"], "run", "{t}");
    let lead = s.get(&format!("/v1/records/{id}"), ADMIN_KEY).await.body;
    assert_eq!(lead["owner"], "ann", "the owner it assigned: {lead}");
    let on_lead = timeline(&s, id, "task").await;
    assert_eq!(on_lead.len(), 1, "{on_lead:?}");
    assert_eq!(on_lead[0]["id"], t["id"]);
    s.stop().await;
}

#[tokio::test]
async fn committed_onboarding_kickoff_task_only_on_the_first_win() {
    let (_dir, s) = server(&[("onboarding", example("onboarding"))]).await;
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "deals", "module": "onboarding", "version": 1, "mode": "background",
               "triggers": [{"on": "entered_stage", "stage": "won"}],
               "config": {"kickoff_within_hours": 48, "product": "Stagecraft"},
               "grants": {"fields": ["onboarding_step"], "channels": ["email"],
                          "actions": ["create:task"]}}),
    )
    .await;
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
                   "owner": "bob", "stage": "negotiation", "contact": grace["id"]}),
        )
        .await;
    let id = deal["id"].as_str().unwrap();
    move_to(&s, id, "won").await;
    runs_done(&s, "onboarding", id, 1).await;
    let kickoff = tasks(&s, "assignee=bob").await;
    assert_eq!(kickoff.len(), 1, "{kickoff:?}");
    assert_eq!(kickoff[0]["record"], id);
    assert_eq!(kickoff[0]["title"], "Kickoff call with Grace Hopper");
    assert_eq!(kickoff[0]["tags"], json!(["kickoff"]));

    // Reopened and won again: onboarding runs, and gives no second kickoff task.
    move_to(&s, id, "negotiation").await;
    move_to(&s, id, "won").await;
    runs_done(&s, "onboarding", id, 2).await;
    let on_deal = timeline(&s, id, "task").await;
    assert_eq!(on_deal.len(), 1, "{on_deal:?}");
    assert_eq!(on_deal[0]["id"], kickoff[0]["id"]);
    assert_eq!(tasks(&s, "assignee=bob").await.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn committed_sla_escalation_comment_is_on_the_ticket() {
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
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "support", "module": "sla-escalation", "version": 1,
               "mode": "background", "triggers": [{"on": "created"}],
               "config": {"response_seconds": 1, "on_call": "dana", "comment": true},
               "grants": {"fields": ["owner", "sla_breached_at"], "actions": ["comment"]}}),
    )
    .await;
    let ticket = s
        .record(
            ADMIN_KEY,
            json!({"kind": "lead", "pipeline": "support", "name": "Printer on fire"}),
        )
        .await;
    let id = ticket["id"].as_str().unwrap();
    let comments = eventually("the escalation's comment", 1200, || async {
        let c = timeline(&s, id, "comment").await;
        (!c.is_empty()).then_some(c)
    })
    .await;
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert_eq!(comments[0]["record"], id);
    assert_eq!(comments[0]["author"]["type"], "run", "{:?}", comments[0]);
    let body = comments[0]["body"].as_str().unwrap();
    assert!(
        body.starts_with("Response SLA breached: still in \"new\"")
            && body.ends_with("Escalated to \"escalated\" and reassigned to dana."),
        "{body}"
    );
    // Committed with the run's other effects.
    let ticket = s.get(&format!("/v1/records/{id}"), ADMIN_KEY).await.body;
    assert_eq!(ticket["stage"], "escalated", "{ticket}");
    assert_eq!(ticket["owner"], "dana", "{ticket}");
    s.stop().await;
}

#[tokio::test]
async fn committed_lead_to_deal_links_and_never_duplicates() {
    let (_dir, s) = server(&[("lead-to-deal", example("lead-to-deal"))]).await;
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "lead-to-deal", "version": 1, "mode": "background",
               "triggers": [{"on": "entered_stage", "stage": "qualified"}],
               "grants": {"fields": ["converted_deal"],
                          "actions": ["create:contact", "create:company", "create:deal",
                                      "create:task", "comment"]}}),
    )
    .await;
    let records = |kind: &'static str| {
        let s = &s;
        async move {
            let r = s
                .get(&format!("/v1/records?kind={kind}&limit=500"), ADMIN_KEY)
                .await;
            r.body["records"].as_array().unwrap().clone()
        }
    };
    let lead = s
        .record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": "Ada Lovelace", "email": "ada@analytical.example",
                   "owner": "ann", "custom": {"company_name": "Analytical Engines"}}),
        )
        .await;
    let id = lead["id"].as_str().unwrap();
    move_to(&s, id, "qualified").await;
    runs_done(&s, "lead-to-deal", id, 1).await;
    let lead = s.get(&format!("/v1/records/{id}"), ADMIN_KEY).await.body;
    let deal_id = lead["custom"]["converted_deal"]
        .as_str()
        .unwrap()
        .to_string();
    let deal = s
        .get(&format!("/v1/records/{deal_id}"), ADMIN_KEY)
        .await
        .body;
    assert_eq!(deal["kind"], "deal", "{deal}");
    assert_eq!(deal["name"], "Ada Lovelace deal");
    assert_eq!(deal["owner"], "ann");
    let contacts = records("contact").await;
    let companies = records("company").await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(companies.len(), 1, "{companies:?}");
    let (contact, company) = (&contacts[0], &companies[0]);
    assert_eq!(contact["email"], "ada@analytical.example");
    assert_eq!(contact["company"], company["id"], "the contact is linked");
    assert_eq!(company["name"], "Analytical Engines");
    assert_eq!(deal["contact"], contact["id"]);
    assert_eq!(deal["company"], company["id"]);
    let calls = timeline(&s, &deal_id, "task").await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["title"], "Discovery call with Ada Lovelace");
    assert_eq!(calls[0]["assignee"], "ann");
    let said = timeline(&s, id, "comment").await;
    assert_eq!(said.len(), 1, "{said:?}");
    assert_eq!(
        said[0]["body"],
        format!(
            "Converted: contact {}, deal {deal_id}",
            contact["id"].as_str().unwrap()
        )
    );

    // Qualified again: the converted lead is left alone.
    move_to(&s, id, "new").await;
    move_to(&s, id, "qualified").await;
    runs_done(&s, "lead-to-deal", id, 2).await;
    // A second lead with the same email (other case) and company: a new deal, linked to the
    // existing contact and company.
    let again = s
        .record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": "Ada L.", "email": "ADA@analytical.example",
                   "custom": {"company_name": "analytical engines"}}),
        )
        .await;
    let again_id = again["id"].as_str().unwrap();
    move_to(&s, again_id, "qualified").await;
    runs_done(&s, "lead-to-deal", again_id, 1).await;
    assert_eq!(records("contact").await.len(), 1, "no second contact");
    assert_eq!(records("company").await.len(), 1, "no second company");
    let deals = records("deal").await;
    assert_eq!(deals.len(), 2, "one deal per converted lead: {deals:?}");
    let second = deals.iter().find(|d| d["id"] != deal_id.as_str()).unwrap();
    assert_eq!(second["contact"], contact["id"]);
    assert_eq!(second["company"], company["id"]);
    assert_eq!(timeline(&s, id, "comment").await.len(), 1, "said once");
    s.stop().await;
}

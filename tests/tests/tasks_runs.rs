//! Host API 0.2's creations committed by real runs (the `parity` guest, real Wasm, real
//! server): records, tasks and comments commit with the run's change, all or nothing; a
//! record a run creates starts its own cascade; run history shows the effects; the task
//! triggers (`task_completed`, `task_overdue`, filtered by title prefix or tag) run bindings,
//! and a module built against 0.1 receives task events as inbound events, unchanged.

#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::Value;
use stagecraft_tests::{eventually, guest, json, temp_dir, Server, ADMIN_KEY};

fn all_actions() -> Value {
    json!([
        "create:lead",
        "create:contact",
        "create:company",
        "create:deal",
        "create:task",
        "complete:task",
        "comment"
    ])
}

async fn with_parity(s: &Server) {
    let dev = s.key(ADMIN_KEY, "developer").await;
    assert_eq!(
        s.upload(&dev, "parity", guest("parity")).await.status,
        StatusCode::CREATED
    );
}

/// An inline parity binding on the leads pipeline making `ops` on `triggers`.
async fn bind(s: &Server, mode: &str, triggers: Value, ops: Value) -> String {
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "parity", "version": 1, "mode": mode,
               "triggers": triggers, "config": {"ops": ops},
               "grants": {"fields": ["*"], "actions": all_actions()}}),
    )
    .await
}

async fn entries(s: &Server, record: &str) -> Vec<Value> {
    let r = s
        .get(
            &format!("/v1/records/{record}/timeline?limit=500"),
            ADMIN_KEY,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["entries"].as_array().unwrap().clone()
}

fn comments(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e["type"] == "comment")
        .map(|e| e["comment"]["body"].as_str().unwrap().to_string())
        .collect()
}

async fn records(s: &Server, query: &str) -> Vec<Value> {
    let r = s.get(&format!("/v1/records?{query}"), ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["records"].as_array().unwrap().clone()
}

fn effect_types(run: &Value) -> Vec<&str> {
    run["effects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect()
}

fn conversion() -> Value {
    json!([
        {"create": "contact", "name": "Ada C", "fields": {"email": "ada@example.com"}},
        {"task": "Call within 24 h", "due_in": 86400, "assignee": "ann", "tags": ["call"]},
        {"comment": "welcome"}
    ])
}

#[tokio::test]
async fn a_run_commits_its_records_tasks_and_comments_with_the_change() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    with_parity(&s).await;
    let b = bind(&s, "inline", json!([{"on": "created"}]), conversion()).await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Ada"}))
        .await;
    let id = lead["id"].as_str().unwrap();

    let contacts = records(&s, "kind=contact").await;
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0]["email"], "ada@example.com");
    let tl = entries(&s, id).await;
    assert_eq!(comments(&tl), ["welcome"]);
    let task = tl.iter().find(|e| e["type"] == "task").unwrap();
    assert_eq!(task["task"]["title"], "Call within 24 h");
    assert_eq!(task["task"]["assignee"], "ann");
    assert_eq!(task["task"]["created_by"]["type"], "run");
    assert_eq!(task["task"]["created_by"]["binding"], b.as_str());
    assert!(task["task"]["due_at"].is_string());
    assert!(tl.iter().any(|e| e["event"]["type"] == "task_created"));
    let c = tl.iter().find(|e| e["type"] == "comment").unwrap();
    assert_eq!(c["comment"]["author"]["type"], "run");
    let mine = s.get("/v1/tasks?assignee=ann", ADMIN_KEY).await;
    assert_eq!(mine.body["tasks"].as_array().unwrap().len(), 1);

    // Run history shows what the run made.
    let runs = s.runs(ADMIN_KEY, &format!("binding={b}")).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(
        effect_types(&runs[0]),
        ["create_record", "create_task", "comment"]
    );
    s.stop().await;
}

#[tokio::test]
async fn a_change_whose_run_goes_past_a_cap_commits_none_of_it() {
    let dir = temp_dir();
    let mut config = stagecraft::config::Config::new(dir.path());
    config.automation.tasks.tasks_per_record = 1;
    let s = Server::start_with(config).await;
    with_parity(&s).await;
    let mut ops = conversion();
    ops.as_array_mut()
        .unwrap()
        .push(json!({"task": "Send the deck"}));
    bind(&s, "inline", json!([{"on": "created"}]), ops).await;
    let r = s
        .post(
            "/v1/records",
            ADMIN_KEY,
            json!({"kind": "lead", "name": "Ada"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.code(), "limit_exceeded", "{:?}", r.body);
    assert!(r.message().contains("per record"), "{:?}", r.body);
    // Neither the lead, nor the contact the run created, nor its task or comment.
    assert!(records(&s, "").await.is_empty());
    let tasks = s.get("/v1/tasks", ADMIN_KEY).await;
    assert_eq!(tasks.body["tasks"], json!([]), "{:?}", tasks.body);
    let events = s.get("/v1/events", ADMIN_KEY).await;
    assert_eq!(events.body["events"], json!([]), "{:?}", events.body);
    s.stop().await;
}

#[tokio::test]
async fn records_a_run_creates_start_their_own_cascade() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    with_parity(&s).await;
    // One binding spawns a lead from every new lead; another comments on every new lead.
    let spawner = bind(
        &s,
        "inline",
        json!([{"on": "created"}]),
        json!([{"create": "lead", "name": "Spawned", "pipeline": "leads"}]),
    )
    .await;
    let commenter = bind(
        &s,
        "inline",
        json!([{"on": "created"}]),
        json!([{"comment": "seen"}]),
    )
    .await;
    let first = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Ada"}))
        .await;
    let leads = records(&s, "kind=lead").await;
    assert_eq!(
        leads.len(),
        2,
        "the loop guard stops the spawner at its own lead"
    );
    let spawned = leads.iter().find(|l| l["name"] == "Spawned").unwrap();
    // The spawned lead's `created` event ran the commenter, one level deeper.
    assert_eq!(
        comments(&entries(&s, spawned["id"].as_str().unwrap()).await),
        ["seen"]
    );
    assert_eq!(
        comments(&entries(&s, first["id"].as_str().unwrap()).await),
        ["seen"]
    );
    let runs = s.runs(ADMIN_KEY, &format!("binding={commenter}")).await;
    let mut depths: Vec<u64> = runs.iter().map(|r| r["depth"].as_u64().unwrap()).collect();
    depths.sort();
    assert_eq!(depths, [0, 1]);
    assert_eq!(
        s.runs(ADMIN_KEY, &format!("binding={spawner}")).await.len(),
        1
    );
    s.stop().await;
}

#[tokio::test]
async fn task_triggers_run_on_completion_and_when_overdue() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    with_parity(&s).await;
    let calls = bind(
        &s,
        "inline",
        json!([{"on": "task_completed", "title_prefix": "Call"}]),
        json!([{"comment": "call done"}]),
    )
    .await;
    let overdue = bind(
        &s,
        "background",
        json!([{"on": "task_overdue", "tag": "call"}]),
        json!([{"comment": "overdue!"}]),
    )
    .await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Ada"}))
        .await;
    let id = lead["id"].as_str().unwrap();
    let task = |title: &str, tags: Value, due: Option<chrono::DateTime<chrono::Utc>>| {
        let body = json!({"title": title, "tags": tags,
                          "due_at": due.map(|d| d.to_rfc3339())});
        let s = &s;
        async move {
            let r = s
                .post(&format!("/v1/records/{id}/tasks"), ADMIN_KEY, body)
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
            r.body["id"].as_str().unwrap().to_string()
        }
    };
    let complete = |t: String| {
        let s = &s;
        async move {
            let r = s
                .post(&format!("/v1/tasks/{t}/complete"), ADMIN_KEY, json!({}))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        }
    };

    // task_completed, filtered by title prefix (inline: done when the request returns).
    complete(task("Email Ada", json!([]), None).await).await;
    assert!(s
        .runs(ADMIN_KEY, &format!("binding={calls}"))
        .await
        .is_empty());
    complete(task("Call Ada", json!([]), None).await).await;
    let runs = s.runs(ADMIN_KEY, &format!("binding={calls}")).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["event_kind"], "task_completed");
    assert_eq!(comments(&entries(&s, id).await), ["call done"]);

    // task_overdue fires from the task's durable timer, for tasks tagged `call`.
    let soon = chrono::Utc::now() + chrono::Duration::seconds(1);
    let late = task("Call back", json!(["call"]), Some(soon)).await;
    // A completed task's timer is cancelled: it never fires.
    let cancelled = task("Call again", json!(["call"]), Some(soon)).await;
    complete(cancelled.clone()).await;
    let timers = s.state.store.timers("default").unwrap();
    let armed: Vec<String> = timers
        .iter()
        .filter_map(|t| match &t.kind {
            stagecraft::model::TimerKind::TaskOverdue { task } => Some(task.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        armed,
        [late.as_str()],
        "only the open task's timer is armed"
    );
    let run = eventually("the overdue binding runs", 1200, || async {
        s.runs(ADMIN_KEY, &format!("binding={overdue}"))
            .await
            .into_iter()
            .find(|r| r["outcome"]["kind"] == "ok")
    })
    .await;
    assert_eq!(run["event_kind"], "task_overdue");
    assert_eq!(run["record"], id);
    let tl = entries(&s, id).await;
    assert!(comments(&tl).contains(&"overdue!".to_string()), "{tl:?}");
    let fired: Vec<&Value> = tl
        .iter()
        .filter(|e| e["event"]["type"] == "task_overdue")
        .collect();
    assert_eq!(fired.len(), 1, "{tl:?}");
    assert_eq!(fired[0]["event"]["task"]["id"], late.as_str());
    s.stop().await;
}

#[tokio::test]
async fn a_0_1_module_receives_task_events_unchanged() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let dev = s.key(ADMIN_KEY, "developer").await;
    let r = s.upload(&dev, "old", guest("v01-mover")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "old", "version": 1, "mode": "inline",
               "triggers": [{"on": "task_completed"}], "config": {"target": "contacted"},
               "grants": {"fields": ["v01"]}}),
    )
    .await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Ada"}))
        .await;
    let id = lead["id"].as_str().unwrap();
    assert_eq!(lead["stage"], "new");
    let t = s
        .post(
            &format!("/v1/records/{id}/tasks"),
            ADMIN_KEY,
            json!({"title": "Call"}),
        )
        .await;
    let t = t.body["id"].as_str().unwrap().to_string();
    let r = s
        .post(&format!("/v1/tasks/{t}/complete"), ADMIN_KEY, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let now = s.get(&format!("/v1/records/{id}"), ADMIN_KEY).await;
    assert_eq!(now.body["stage"], "contacted", "{:?}", now.body);
    assert_eq!(now.body["custom"]["v01"], true);
    let runs = s.runs(ADMIN_KEY, "module=old").await;
    assert_eq!(runs[0]["event_kind"], "task_completed");
    assert_eq!(runs[0]["outcome"]["kind"], "ok", "{:?}", runs[0]);
    s.stop().await;
}

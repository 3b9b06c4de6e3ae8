//! Tasks, comments and the record timeline through the real router on a real socket:
//! create, update, complete and list tasks (per record, per assignee, mine, open, overdue),
//! comment, page the timeline with its cursor — and the bad paths: missing and foreign
//! records, the shared rules' refusals, stale versions, roles, reserved names, bad cursors,
//! and the per-record caps with their named error.

#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::Value;
use stagecraft_tests::{json, temp_dir, Response, Server, ADMIN_KEY};

/// An agent key acting for CRM user `user`.
async fn agent(s: &Server, user: &str) -> String {
    let r = s
        .post(
            "/v1/keys",
            ADMIN_KEY,
            json!({"role": "agent", "name": format!("{user}'s key"), "user": user}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["secret"].as_str().unwrap().to_string()
}

async fn lead(s: &Server, name: &str) -> String {
    let r = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": name}))
        .await;
    r["id"].as_str().unwrap().to_string()
}

fn ids(v: &Value, field: &str) -> Vec<String> {
    v[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

/// The whole timeline, `limit` entries a page, following `next`.
async fn timeline(s: &Server, record: &str, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    for _ in 0..100 {
        let r = s
            .get(
                &format!("/v1/records/{record}/timeline?limit={limit}{cursor}"),
                ADMIN_KEY,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        out.extend(r.body["entries"].as_array().unwrap().iter().cloned());
        match r.body["next"].as_str() {
            Some(n) => cursor = format!("&cursor={n}"),
            None => return out,
        }
    }
    panic!("the timeline never ended");
}

/// `type:what` of each timeline entry (an event's kind, a task's title, a comment's body).
fn shape(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| match e["type"].as_str().unwrap() {
            "event" => format!("event:{}", e["event"]["type"].as_str().unwrap()),
            "task" => format!("task:{}", e["task"]["title"].as_str().unwrap()),
            "comment" => format!("comment:{}", e["comment"]["body"].as_str().unwrap()),
            other => panic!("unknown entry type {other}"),
        })
        .collect()
}

#[tokio::test]
async fn tasks_comments_and_the_timeline() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let ann = agent(&s, "ann").await;
    let bob = agent(&s, "bob").await;
    let id = lead(&s, "Ada").await;

    // Ann creates a task: it is hers unless she says otherwise, and she made it.
    let r = s
        .post(
            &format!("/v1/records/{id}/tasks"),
            &ann,
            json!({"title": "Call Ada", "priority": "high", "tags": ["call"],
                   "due_at": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let call = r.body.clone();
    let call_id = call["id"].as_str().unwrap().to_string();
    assert_eq!(call["assignee"], "ann");
    assert_eq!(call["status"], "open");
    assert_eq!(call["version"], 1);
    assert_eq!(call["created_by"]["type"], "key");
    assert_eq!(call["created_by"]["user"], "ann");
    // Bob gets one with a due time ahead.
    let r = s
        .post(
            &format!("/v1/records/{id}/tasks"),
            &ann,
            json!({"title": "Send the quote", "assignee": "bob",
                   "due_at": (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let quote_id = r.body["id"].as_str().unwrap().to_string();
    let r = s
        .post(
            &format!("/v1/records/{id}/comments"),
            &bob,
            json!({"body": "She asked for a quote."}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["author"]["user"], "bob");

    // Lists: mine, by assignee, overdue, per record.
    let mine = s.get("/v1/tasks?mine=true", &ann).await;
    assert_eq!(ids(&mine.body, "tasks"), [call_id.clone()]);
    let bobs = s.get("/v1/tasks?assignee=bob&status=open", &ann).await;
    assert_eq!(ids(&bobs.body, "tasks"), [quote_id.clone()]);
    let overdue = s.get("/v1/tasks?overdue=true", &bob).await;
    assert_eq!(ids(&overdue.body, "tasks"), [call_id.clone()]);
    let on_record = s.get(&format!("/v1/records/{id}/tasks"), &bob).await;
    assert_eq!(
        ids(&on_record.body, "tasks"),
        [call_id.clone(), quote_id.clone()]
    );

    // A stale update is refused; a fresh one moves the due time (If-Match or version).
    let r = s
        .patch(
            &format!("/v1/tasks/{quote_id}"),
            &ann,
            json!({"title": "Send the quote today", "version": 7}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.code(), "conflict");
    let r = s
        .patch(
            &format!("/v1/tasks/{quote_id}"),
            &ann,
            json!({"title": "Send the quote today", "version": 1, "due_at": "2021-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["version"], 2);
    let overdue = s.get("/v1/tasks?overdue=true&assignee=bob", &bob).await;
    assert_eq!(ids(&overdue.body, "tasks"), [quote_id.clone()]);

    // Completing: once, by the caller; it leaves the overdue list.
    let r = s
        .post(&format!("/v1/tasks/{call_id}/complete"), &ann, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "done");
    assert_eq!(r.body["completed_by"]["user"], "ann");
    let again = s
        .post(&format!("/v1/tasks/{call_id}/complete"), &ann, json!({}))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{:?}", again.body);
    assert_eq!(again.code(), "refused");
    let overdue = s.get("/v1/tasks?overdue=true", &bob).await;
    assert_eq!(ids(&overdue.body, "tasks"), [quote_id.clone()]);
    let done = s.get("/v1/tasks?mine=true&status=done", &ann).await;
    assert_eq!(ids(&done.body, "tasks"), [call_id.clone()]);
    assert_eq!(
        s.get(&format!("/v1/tasks/{call_id}"), &bob).await.body["status"],
        "done"
    );

    // The timeline: events, tasks and the comment in time order, the same however paged.
    let whole = timeline(&s, &id, 500).await;
    assert_eq!(
        shape(&whole),
        [
            "event:created",
            "task:Call Ada",
            "event:task_created",
            "task:Send the quote today",
            "event:task_created",
            "comment:She asked for a quote.",
            "event:task_completed",
        ]
    );
    assert_eq!(whole[1]["task"]["status"], "done", "a task as it is now");
    for limit in [1, 2, 3] {
        assert_eq!(timeline(&s, &id, limit).await, whole, "{limit} a page");
    }
    let comments = s.get(&format!("/v1/records/{id}/comments"), &ann).await;
    assert_eq!(comments.body["comments"].as_array().unwrap().len(), 1);

    // Journal events carry the task, so they can be read back from the journal too.
    let events = s.get(&format!("/v1/events?record={id}"), ADMIN_KEY).await;
    let kinds: Vec<&str> = events.body["events"]
        .as_array()
        .map(|a| a.iter().map(|e| e["type"].as_str().unwrap()).collect())
        .unwrap_or_default();
    assert!(kinds.contains(&"task_completed"), "{kinds:?}");
    s.stop().await;
}

#[tokio::test]
async fn bad_requests_are_refused_by_name_and_change_nothing() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let ann = agent(&s, "ann").await;
    let id = lead(&s, "Ada").await;
    let dev = s.key(ADMIN_KEY, "developer").await;
    let other = s.tenant("globex").await;
    let theirs = s
        .record(&other, json!({"kind": "lead", "name": "Theirs"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let tasks_of = |record: String| {
        let s = &s;
        async move {
            s.get(&format!("/v1/records/{record}/tasks"), ADMIN_KEY)
                .await
                .body["tasks"]
                .as_array()
                .map_or(0, Vec::len)
        }
    };

    let post = |path: String, key: String, body: Value| {
        let s = &s;
        async move { s.post(&path, &key, body).await }
    };
    let on = |record: &str| format!("/v1/records/{record}/tasks");
    let check = |r: Response, status: StatusCode, code: &str, needle: &str| {
        assert_eq!(r.status, status, "{:?}", r.body);
        assert_eq!(r.code(), code, "{:?}", r.body);
        assert!(r.message().contains(needle), "{:?}", r.body);
    };
    let missing = "rec_00000000000000000000000000";
    check(
        post(on(missing), ann.clone(), json!({"title": "x"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "record",
    );
    check(
        post(on(&theirs), ann.clone(), json!({"title": "x"})).await,
        StatusCode::NOT_FOUND,
        "not_found",
        "record",
    );
    check(
        post(on(&id), ann.clone(), json!({"title": "  "})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        "blank",
    );
    check(
        post(on(&id), ann.clone(), json!({"title": "x".repeat(256)})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        "255",
    );
    check(
        post(
            on(&id),
            ann.clone(),
            json!({"title": "x", "tags": ["no spaces"]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        "tag",
    );
    check(
        post(
            on(&id),
            ann.clone(),
            json!({"title": "x", "due_at": (chrono::Utc::now() + chrono::Duration::days(400)).to_rfc3339()}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        "366 days",
    );
    check(
        post(on(&id), ann.clone(), json!({"title": "x", "colour": "red"})).await,
        StatusCode::BAD_REQUEST,
        "unknown_field",
        "colour",
    );
    check(
        post(on(&id), dev.clone(), json!({"title": "x"})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "agent or admin",
    );
    check(
        post(
            format!("/v1/records/{id}/comments"),
            ann.clone(),
            json!({"body": ""}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        "blank",
    );
    check(
        post(
            format!("/v1/records/{id}/comments"),
            ann.clone(),
            json!({"body": "b".repeat(16 * 1024 + 1)}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        "16384",
    );
    assert_eq!(tasks_of(id.clone()).await, 0, "nothing was created");

    // A task to update: bad patches change nothing.
    let t = post(on(&id), ann.clone(), json!({"title": "Call"})).await;
    let tid = t.body["id"].as_str().unwrap().to_string();
    let r = s
        .patch(&format!("/v1/tasks/{tid}"), &ann, json!({"record": id}))
        .await;
    check(r, StatusCode::BAD_REQUEST, "unknown_field", "record");
    let r = s
        .patch(&format!("/v1/tasks/{tid}"), &ann, json!({"due_at": "soon"}))
        .await;
    check(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid", "RFC 3339");
    let r = s
        .patch(
            &format!("/v1/tasks/{tid}"),
            &ann,
            json!({"priority": "urgent"}),
        )
        .await;
    check(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid", "priority");
    let r = s.get(&format!("/v1/tasks/{tid}"), &ann).await;
    assert_eq!(r.body["version"], 1, "{:?}", r.body);
    // Another tenant sees none of it.
    let r = s.get(&format!("/v1/tasks/{tid}"), &other).await;
    check(r, StatusCode::NOT_FOUND, "not_found", "task");
    let r = s
        .post(&format!("/v1/tasks/{tid}/complete"), &other, json!({}))
        .await;
    check(r, StatusCode::NOT_FOUND, "not_found", "task");
    let r = s.get("/v1/tasks", &other).await;
    assert_eq!(r.body["tasks"], json!([]), "{:?}", r.body);
    let r = s.get(&format!("/v1/records/{id}/timeline"), &other).await;
    check(r, StatusCode::NOT_FOUND, "not_found", "record");
    let r = s
        .post(
            &format!("/v1/tasks/{tid}/complete"),
            &ann,
            json!({"version": 9}),
        )
        .await;
    check(r, StatusCode::CONFLICT, "conflict", "version");
    let r = s
        .post(
            &format!("/v1/tasks/{tid}/complete"),
            &ann,
            json!({"versio": 1}),
        )
        .await;
    check(r, StatusCode::BAD_REQUEST, "unknown_field", "versio");

    // Queries.
    for (q, needle) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("after=%22%3B--", "cursor"),
        ("status=done&overdue=true", "overdue"),
        ("mine=true&assignee=ann", "not both"),
        ("status=maybe", "status"),
    ] {
        let r = s.get(&format!("/v1/tasks?{q}"), &ann).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {:?}", r.body);
        assert!(r.message().contains(needle), "{q}: {:?}", r.body);
    }
    let r = s.get("/v1/tasks?mine=true", ADMIN_KEY).await;
    check(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid", "CRM user");
    let r = s
        .get(&format!("/v1/records/{id}/timeline?cursor=a%20b"), &ann)
        .await;
    check(r, StatusCode::BAD_REQUEST, "invalid_query", "cursor");

    // Task event names are reserved: a webhook cannot pose as one, nor a trigger wait for one.
    let r = s
        .post(
            "/v1/events",
            &ann,
            json!({"name": "task_completed", "record": id, "payload": {"title": "forged"}}),
        )
        .await;
    check(
        r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reserved_name",
        "task_",
    );
    s.stop().await;
}

#[tokio::test]
async fn tasks_and_comments_per_record_are_capped_by_name() {
    let dir = temp_dir();
    let mut config = stagecraft::config::Config::new(dir.path());
    config.automation.tasks = stagecraft::store::TaskCaps {
        tasks_per_record: 2,
        open_tasks_per_tenant: 100,
        comments_per_record: 1,
    };
    let s = Server::start_with(config).await;
    let id = lead(&s, "Ada").await;
    for n in 0..2 {
        let r = s
            .post(
                &format!("/v1/records/{id}/tasks"),
                ADMIN_KEY,
                json!({"title": format!("task {n}")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    let r = s
        .post(
            &format!("/v1/records/{id}/tasks"),
            ADMIN_KEY,
            json!({"title": "one too many"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.code(), "limit_exceeded");
    assert!(
        r.message().contains("the limit is 2 per record"),
        "{:?}",
        r.body
    );
    let r = s
        .post(
            &format!("/v1/records/{id}/comments"),
            ADMIN_KEY,
            json!({"body": "one"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = s
        .post(
            &format!("/v1/records/{id}/comments"),
            ADMIN_KEY,
            json!({"body": "two"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.code(), "limit_exceeded");
    // Nothing of the refused requests is on the timeline, nor in the journal.
    let t = s
        .get(&format!("/v1/records/{id}/timeline?limit=500"), ADMIN_KEY)
        .await;
    let entries = t.body["entries"].as_array().unwrap();
    let created = entries
        .iter()
        .filter(|e| e["event"]["type"] == "task_created")
        .count();
    assert_eq!(created, 2, "{entries:?}");
    assert_eq!(entries.iter().filter(|e| e["type"] == "task").count(), 2);
    assert_eq!(entries.iter().filter(|e| e["type"] == "comment").count(), 1);
    s.stop().await;
}

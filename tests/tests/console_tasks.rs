//! Tasks and comments in the console, in a real headless Chromium without JavaScript: the
//! record page's timeline (events, comments and tasks in time order, paged) with its forms
//! to comment, add a task and complete it; "My tasks" with the signed-in key's CRM user's
//! overdue and open tasks; a key without a CRM user told why it has none; and the new pages
//! in every language.

#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use stagecraft_tests::browser::Browser;
use stagecraft_tests::{json, temp_dir, Server, ADMIN_KEY};

/// An agent key whose CRM user is `user`.
async fn agent(s: &Server, user: &str) -> String {
    let r = s
        .post(
            "/v1/keys",
            ADMIN_KEY,
            json!({"role": "agent", "name": user, "user": user}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["secret"].as_str().unwrap().to_string()
}

async fn sign_in(b: &Browser, s: &Server, key: &str) {
    b.goto(&format!("{}/console/login", s.base)).await;
    b.type_into(&b.find("#key").await, key).await;
    b.click(&b.find("#sign-in").await).await;
    b.find("nav").await;
}

#[tokio::test]
async fn in_a_browser_a_record_timeline_takes_comments_and_tasks_and_my_tasks_lists_them() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let ann = agent(&s, "ann").await;
    let lead = s
        .record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": "Ada Lovelace", "email": "ada@engines.example", "owner": "ann"}),
        )
        .await;
    let id = lead["id"].as_str().unwrap().to_string();
    // An overdue task of ann's, made through the API.
    let r = s
        .post(
            &format!("/v1/records/{id}/tasks"),
            ADMIN_KEY,
            json!({"title": "Send the contract", "assignee": "ann",
                   "due_at": "2020-01-01T09:00:00Z"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);

    let b = Browser::start_without_javascript().await;
    sign_in(&b, &s, &ann).await;
    b.goto(&format!("{}/console/records/{id}", s.base)).await;
    let timeline = b.text(&b.find("#history").await).await;
    assert!(
        timeline.contains("created") && timeline.contains("Send the contract"),
        "{timeline}"
    );

    // Comment.
    b.type_into(&b.find("#comment-body").await, "Called, no answer.")
        .await;
    b.click(&b.find("#comment-form button").await).await;
    b.wait_for_text("Comment added.").await;
    let timeline = b.text(&b.find("#history").await).await;
    assert!(timeline.contains("Called, no answer."), "{timeline}");
    assert!(timeline.contains("ann"), "the author: {timeline}");

    // A task for the record's owner (prefilled), without a due time.
    b.type_into(&b.find("#task-title").await, "Call back").await;
    b.click(&b.find("#task-form button").await).await;
    b.wait_for_text("Task added.").await;
    let timeline = b.text(&b.find("#history").await).await;
    assert!(timeline.contains("Call back"), "{timeline}");
    // Tasks, comments and events in time order: the comment comes before the new task.
    let comment_at = timeline.find("Called, no answer.").unwrap();
    let task_at = timeline.find("Call back").unwrap();
    let created_at = timeline.find("Send the contract").unwrap();
    assert!(
        created_at < comment_at && comment_at < task_at,
        "{timeline}"
    );
    let api = s
        .get(&format!("/v1/records/{id}/tasks"), ADMIN_KEY)
        .await
        .body;
    let call_back = api["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["title"] == "Call back")
        .cloned()
        .unwrap();
    assert_eq!(call_back["assignee"], "ann", "the owner, prefilled");
    assert_eq!(call_back["status"], "open");

    // My tasks: the overdue one, and both open ones.
    b.click(&b.find("#nav-tasks").await).await;
    let overdue = b.text(&b.find("#overdue-tasks").await).await;
    assert!(overdue.contains("Send the contract"), "{overdue}");
    assert!(!overdue.contains("Call back"), "{overdue}");
    let open = b.text(&b.find("#open-tasks").await).await;
    assert!(
        open.contains("Send the contract") && open.contains("Call back"),
        "{open}"
    );

    // Complete the overdue one from My tasks.
    b.click(&b.find("#overdue-tasks button").await).await;
    b.wait_for_text("Task completed.").await;
    b.find("#no-overdue").await;
    let open = b.text(&b.find("#open-tasks").await).await;
    assert!(!open.contains("Send the contract"), "{open}");
    let api = s
        .get("/v1/tasks?assignee=ann&status=done", ADMIN_KEY)
        .await
        .body;
    assert_eq!(api["tasks"][0]["title"], "Send the contract", "{api}");

    // Complete the other from the record page.
    b.goto(&format!("{}/console/records/{id}", s.base)).await;
    b.click(&b.find("button.complete-task").await).await;
    b.wait_for_text("Task completed.").await;
    assert_eq!(b.count("button.complete-task").await, 0);
    s.stop().await;
}

#[tokio::test]
async fn the_timeline_pages_and_bad_forms_are_refused_by_name() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let ann = agent(&s, "ann").await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Busy"}))
        .await;
    let id = lead["id"].as_str().unwrap().to_string();
    for n in 0..55 {
        let r = s
            .post(
                &format!("/v1/records/{id}/comments"),
                ADMIN_KEY,
                json!({"body": format!("note {n:02}")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    let b = Browser::start_without_javascript().await;
    sign_in(&b, &s, &ann).await;
    b.goto(&format!("{}/console/records/{id}", s.base)).await;
    // The first page: the created event and 49 comments; the rest on the next.
    assert_eq!(b.count("#history tbody tr").await, 50);
    let first = b.text(&b.find("#history").await).await;
    assert!(
        first.contains("note 48") && !first.contains("note 49"),
        "{first}"
    );
    b.click(&b.find("#timeline-next").await).await;
    b.find("#timeline-first").await;
    let second = b.text(&b.find("#history").await).await;
    assert!(
        second.contains("note 49") && second.contains("note 54"),
        "{second}"
    );
    assert_eq!(b.count("#timeline-next").await, 0);

    // A blank comment is refused, saying why, and nothing is added.
    b.goto(&format!("{}/console/records/{id}", s.base)).await;
    b.type_into(&b.find("#comment-body").await, "   ").await;
    b.click(&b.find("#comment-form button").await).await;
    let flash = b.wait_for_text("The comment was refused").await;
    assert!(
        flash.contains("blank") || flash.contains("empty"),
        "{flash}"
    );
    let r = s
        .get(&format!("/v1/records/{id}/comments?limit=500"), ADMIN_KEY)
        .await;
    assert_eq!(r.body["comments"].as_array().unwrap().len(), 55);

    // A key without a CRM user has no tasks of its own, and is told so.
    let dev = s.key(ADMIN_KEY, "developer").await;
    let b2 = Browser::start_without_javascript().await;
    sign_in(&b2, &s, &dev).await;
    b2.goto(&format!("{}/console/tasks", s.base)).await;
    b2.find("#tasks-refused").await;
    s.stop().await;
}

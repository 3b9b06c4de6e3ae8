//! `stagecraft tasks` (`--mine`, `--overdue`, `--assignee`, `--status`) and the tasks and
//! comments of `stagecraft records show`, run as a real process against a real server; and
//! the bad paths (a key without a CRM user asking for its own tasks, conflicting flags).

#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use stagecraft_tests::{json, temp_dir, Server, ADMIN_KEY};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn cli(s: &Server, key: &str, args: &[&str]) -> Out {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_stagecraft-server"))
        .env("STAGECRAFT_URL", &s.base)
        .env("STAGECRAFT_KEY", key)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .args(args)
        .output()
        .await
        .expect("run stagecraft");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(o: Out) -> String {
    assert_eq!(o.code, 0, "stdout:\n{}\nstderr:\n{}", o.stdout, o.stderr);
    o.stdout
}

#[tokio::test]
async fn tasks_mine_overdue_and_the_record_timeline() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let r = s
        .post(
            "/v1/keys",
            ADMIN_KEY,
            json!({"role": "agent", "name": "ann", "user": "ann"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let ann = r.body["secret"].as_str().unwrap().to_string();
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Ada"}))
        .await;
    let id = lead["id"].as_str().unwrap();
    let ahead = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    for (title, who, due) in [
        ("Call Ada", "ann", "2020-01-01T00:00:00Z"),
        ("Send the quote", "ann", ahead.as_str()),
        ("Book the demo", "bob", "2020-01-01T00:00:00Z"),
    ] {
        let r = s
            .post(
                &format!("/v1/records/{id}/tasks"),
                ADMIN_KEY,
                json!({"title": title, "assignee": who, "due_at": due}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    let r = s
        .post(
            &format!("/v1/records/{id}/comments"),
            &ann,
            json!({"body": "Asked for a quote"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);

    let mine = ok(cli(&s, &ann, &["tasks", "--mine"]).await);
    assert!(
        mine.contains("Call Ada") && mine.contains("Send the quote"),
        "{mine}"
    );
    assert!(!mine.contains("Book the demo"), "{mine}");
    assert!(
        mine.contains("overdue"),
        "the past-due one says so:\n{mine}"
    );
    let overdue = ok(cli(&s, &ann, &["tasks", "--mine", "--overdue"]).await);
    assert!(overdue.contains("Call Ada"), "{overdue}");
    assert!(!overdue.contains("Send the quote"), "{overdue}");
    let all_overdue = ok(cli(&s, ADMIN_KEY, &["tasks", "--overdue", "--json"]).await);
    let v: serde_json::Value = serde_json::from_str(&all_overdue).unwrap();
    assert_eq!(v["tasks"].as_array().unwrap().len(), 2, "{v}");
    let bobs = ok(cli(&s, ADMIN_KEY, &["tasks", "--assignee", "bob"]).await);
    assert!(
        bobs.contains("Book the demo") && !bobs.contains("Call Ada"),
        "{bobs}"
    );

    let show = ok(cli(&s, ADMIN_KEY, &["records", "show", id]).await);
    assert!(
        show.contains("tasks and comments (the latest 4 of 4):"),
        "{show}"
    );
    assert!(show.contains("comment by ann: Asked for a quote"), "{show}");
    assert!(show.contains("task [overdue] Call Ada (for ann"), "{show}");
    let shown: serde_json::Value =
        serde_json::from_str(&ok(
            cli(&s, ADMIN_KEY, &["records", "show", id, "--json"]).await
        ))
        .unwrap();
    assert_eq!(shown["timeline"].as_array().unwrap().len(), 4);

    // Bad paths: the server's refusal, named, exit 1; conflicting flags, exit 2.
    let no_user = cli(&s, ADMIN_KEY, &["tasks", "--mine"]).await;
    assert_eq!(no_user.code, 1, "{}", no_user.stderr);
    assert!(no_user.stderr.contains("CRM user"), "{}", no_user.stderr);
    let both = cli(&s, &ann, &["tasks", "--mine", "--assignee", "bob"]).await;
    assert_eq!(both.code, 2, "{}", both.stderr);
    s.stop().await;
}

//! `stagecraft migrate --from DATA_DIR --to postgres://…` (#18): a data dir made by a real
//! server on sled (a module with two versions, a binding, records moved between stages,
//! their runs, messages and a pending follow-up) is copied into a throwaway PostgreSQL
//! database by the real command; the counts agree, a host started on the database serves
//! the copy and runs its module from the copied bytes, and a second copy into the now
//! non-empty database is refused without `--force`.

#![allow(clippy::unwrap_used)]

use std::process::Output;

use serde_json::json;
use stagecraft_tests::hosts::spawn;
use stagecraft_tests::postgres::TempDatabase;
use stagecraft_tests::{eventually, temp_dir, Server, ADMIN_KEY};

async fn migrate(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_stagecraft-server"))
        .arg("migrate")
        .args(args)
        .output()
        .await
        .expect("run stagecraft migrate")
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

#[tokio::test]
async fn a_sled_data_dir_is_copied_into_postgres_counted_and_served_by_a_host() {
    let Some(db) = TempDatabase::create() else {
        return;
    };
    let url = db.url();

    // A data dir with some of everything, made by a real server on sled.
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    s.upload_guest(ADMIN_KEY, "effector", "effector").await;
    s.upload_guest(ADMIN_KEY, "follower", "follower").await;
    let v2 = s.upload_guest(ADMIN_KEY, "effector", "effector").await;
    assert_eq!(v2, 2);
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "effector", "version": 2, "mode": "background",
               "triggers": [{"on": "created"}],
               "config": {"field": "checked", "value": true, "channel": "notify", "to": "ann"},
               "grants": {"fields": ["checked"], "channels": ["notify"]}}),
    )
    .await;
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "follower", "version": 1, "mode": "inline",
               "triggers": [{"on": "created"}], "config": {"after": 86400}}),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..30 {
        let r = s
            .record(
                ADMIN_KEY,
                json!({"kind": "lead", "name": format!("Lead {i}")}),
            )
            .await;
        ids.push(r["id"].as_str().unwrap().to_string());
    }
    for id in &ids[..10] {
        let r = s
            .post(
                &format!("/v1/records/{id}/stage"),
                ADMIN_KEY,
                json!({"stage": "contacted"}),
            )
            .await;
        assert_eq!(r.status, 200);
    }
    for id in &ids {
        eventually("the background binding ran", 2_400, || async {
            let r = s.get(&format!("/v1/records/{id}"), ADMIN_KEY).await;
            (r.body["custom"]["checked"] == json!(true)).then_some(())
        })
        .await;
    }
    s.stop().await;

    // The copy: progress on stderr, per-tenant counts on stdout, the counts checked.
    let from = dir.path().to_str().unwrap();
    let out = migrate(&["--from", from, "--to", &url]).await;
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("the counts match"), "{stdout}");
    assert!(stdout.contains("30 records"), "{stdout}");
    assert!(stdout.contains("3 module versions"), "{stdout}");
    assert!(
        text(&out.stderr).contains("copying"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(db.count("SELECT count(*) FROM records"), 30);
    // A follow-up is cancelled when its record leaves the stage: 20 leads still wait.
    assert_eq!(
        db.count("SELECT count(*) FROM timers"),
        20,
        "the pending follow-ups"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM runs"),
        60,
        "one run per record and binding"
    );
    assert_eq!(db.count("SELECT count(*) FROM module_blobs"), 2);
    assert_eq!(
        db.count("SELECT max(version) FROM module_versions WHERE module = 'effector'"),
        2
    );

    // A second copy into the database, which now holds the tenant, is refused as it is.
    let again = migrate(&["--from", from, "--to", &url]).await;
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already holds tenants")
            && text(&again.stderr).contains("--force"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(db.count("SELECT count(*) FROM records"), 30);
    let bad = migrate(&["--from", from, "--to", "mysql://x@127.0.0.1/db"]).await;
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("postgres://"),
        "{}",
        text(&bad.stderr)
    );

    // A host on the database serves the copy and runs the copied module from its bytes.
    let host_dir = temp_dir();
    let exe = env!("CARGO_BIN_EXE_stagecraft-server");
    let h = spawn(exe, host_dir.path(), &url, &[], &[]).await;
    let r = h.get(&format!("/v1/records/{}", ids[0])).await;
    assert_eq!(r["stage"], "contacted");
    assert_eq!(r["custom"]["checked"], true);
    let new = h
        .post(
            "/v1/records",
            json!({"kind": "lead", "name": "After the move"}),
        )
        .await;
    let id = new["id"].as_str().unwrap().to_string();
    eventually("the copied binding runs on the new host", 2_400, || async {
        let r = h.get(&format!("/v1/records/{id}")).await;
        (r["custom"]["checked"] == json!(true)).then_some(())
    })
    .await;
}

//! Many hosts on one PostgreSQL database: real `stagecraft serve --database` processes,
//! each with a data dir of its own. What one host writes (records, a binding's run, the
//! module) another host reads and runs.

#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use stagecraft_tests::postgres::TempDatabase;
use stagecraft_tests::{eventually, temp_dir, ADMIN_KEY};
use tokio::process::{Child, Command};

/// A host process on `url`; killed (SIGKILL) when dropped.
struct Host {
    child: Child,
    base: String,
    c: reqwest::Client,
}

async fn spawn(dir: &std::path::Path, url: &str) -> Host {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stagecraft-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("STAGECRAFT_DATABASE_URL", url)
        .env("STAGECRAFT_BOOTSTRAP_KEY", ADMIN_KEY)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the server");
    let base = stagecraft_tests::listening(&mut child).await;
    Host {
        child,
        base,
        c: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap(),
    }
}

impl Host {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .c
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_KEY);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let (status, body) = self.call(reqwest::Method::POST, path, Some(body)).await;
        assert!((200..300).contains(&status), "POST {path}: {status} {body}");
        body
    }

    /// The record once its binding's run has set `field`.
    async fn processed(&self, id: &str, field: &str) -> Value {
        eventually(&format!("{id} processed"), 2_400, || async {
            let r = self.get(&format!("/v1/records/{id}")).await;
            (r["custom"][field] == json!(true)).then_some(r)
        })
        .await
    }
}

#[tokio::test]
async fn two_hosts_on_one_database_share_records_runs_and_modules() {
    let Some(db) = TempDatabase::create() else {
        return;
    };
    let url = db.url();
    let (dir_a, dir_b) = (temp_dir(), temp_dir());
    let mut a = spawn(dir_a.path(), &url).await;

    // Host A: a module, a background binding, a record that triggers it.
    let up =
        a.c.post(format!("{}/v1/modules/effector/versions", a.base))
            .bearer_auth(ADMIN_KEY)
            .body(stagecraft_tests::guest("effector"))
            .send()
            .await
            .unwrap();
    assert_eq!(up.status(), 201);
    let binding = a
        .post(
            "/v1/bindings",
            json!({"pipeline": "leads", "module": "effector", "version": 1,
                   "triggers": [{"on": "created"}],
                   "config": {"field": "checked", "value": true},
                   "grants": {"fields": ["checked"]}}),
        )
        .await;
    let bid = binding["id"].as_str().unwrap().to_string();
    let first = a
        .post(
            "/v1/records",
            json!({"kind": "lead", "name": "Ada", "email": "ada@example.com"}),
        )
        .await;
    let first_id = first["id"].as_str().unwrap().to_string();
    a.processed(&first_id, "checked").await;

    // Host B, started on the same database with an empty data dir of its own, sees it all.
    let b = spawn(dir_b.path(), &url).await;
    let seen = b.get(&format!("/v1/records/{first_id}")).await;
    assert_eq!(seen["name"], "Ada");
    assert_eq!(seen["custom"]["checked"], true);
    let runs = b.get(&format!("/v1/runs?binding={bid}")).await;
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["outcome"]["kind"], "ok");
    let listed = b.get("/v1/records?q=ada@example.com").await;
    assert_eq!(listed["records"][0]["id"], first_id.as_str(), "{listed}");

    // A record created on B is on A too.
    let second = b
        .post("/v1/records", json!({"kind": "lead", "name": "Grace"}))
        .await;
    let second_id = second["id"].as_str().unwrap().to_string();
    let on_a = a.get(&format!("/v1/records/{second_id}")).await;
    assert_eq!(on_a["name"], "Grace");
    // Its binding ran once, on whichever host took the job.
    a.processed(&second_id, "checked").await;

    // With A gone, B runs the binding itself: it fetches the module's bytes from the
    // database (it never saw the upload) and compiles them into its own data dir.
    a.child.kill().await.expect("SIGKILL host A");
    let third = b
        .post("/v1/records", json!({"kind": "lead", "name": "Linus"}))
        .await;
    let third_id = third["id"].as_str().unwrap().to_string();
    b.processed(&third_id, "checked").await;
    let runs = b.get(&format!("/v1/runs?binding={bid}")).await;
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "one run per record: {runs:?}");
    assert!(
        runs.iter().all(|r| r["outcome"]["kind"] == "ok"),
        "{runs:?}"
    );

    // The component is stored once, by its content hash.
    assert_eq!(db.count("SELECT count(*) FROM module_blobs"), 1);
    drop(b);
}

/// Starts a host like [`spawn`] and returns it with the lines it printed before listening
/// (where `admin key: …` goes).
async fn spawn_telling(dir: &std::path::Path, url: &str) -> (Host, Vec<String>) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_stagecraft-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("STAGECRAFT_DATABASE_URL", url)
        .env("STAGECRAFT_BOOTSTRAP_KEY", ADMIN_KEY)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the server");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut before = Vec::new();
    let addr = tokio::time::timeout(Duration::from_secs(120), async {
        while let Ok(Some(line)) = lines.next_line().await {
            match line.strip_prefix("listening on ") {
                Some(a) => return a.to_string(),
                None => before.push(line),
            }
        }
        panic!("the server exited before listening: {before:?}");
    })
    .await
    .expect("the server starts listening");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let host = Host {
        child,
        base: format!("http://{addr}"),
        c: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap(),
    };
    (host, before)
}

/// Hosts started at the same moment on an empty database all see no tenant, and all try to
/// create the first one. Exactly one does and prints its admin key; the others serve that
/// same tenant and print no key (the tenant's primary key decides; the losers' attempt is
/// refused as already there, not an error that stops them). Three rounds of three at once.
#[tokio::test]
async fn hosts_starting_at_once_on_an_empty_database_make_one_tenant_and_all_serve_it() {
    for _round in 0..3 {
        let Some(db) = TempDatabase::create() else {
            return;
        };
        let url = db.url();
        let dirs = [temp_dir(), temp_dir(), temp_dir()];
        let (a, b, c) = tokio::join!(
            spawn_telling(dirs[0].path(), &url),
            spawn_telling(dirs[1].path(), &url),
            spawn_telling(dirs[2].path(), &url)
        );
        let hosts = [a, b, c];
        assert_eq!(db.count("SELECT count(*) FROM tenants"), 1);
        assert_eq!(db.count("SELECT count(*) FROM api_keys"), 1);
        assert_eq!(db.count("SELECT count(*) FROM pipelines"), 2);
        let printed: Vec<_> = hosts
            .iter()
            .flat_map(|(_, said)| said.iter().filter(|l| l.starts_with("admin key: ")))
            .collect();
        assert_eq!(
            printed,
            [&format!("admin key: {ADMIN_KEY}")],
            "one host prints the key: {:?}",
            hosts.iter().map(|(_, said)| said).collect::<Vec<_>>()
        );
        for (h, _) in &hosts {
            let lead = h
                .post("/v1/records", json!({"kind": "lead", "name": "Ada"}))
                .await;
            assert_eq!(lead["stage"], "new", "{lead}");
        }
        assert_eq!(db.count("SELECT count(*) FROM records"), 3);
    }
}

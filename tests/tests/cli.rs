//! The `stagecraft` command line, run as a real process against a real server: module
//! push / enable / dry-run / runs / logs / messages over the HTTP API, `new` → `cargo test` →
//! `build` → a pushed, enabled module moving a real record, and the bad paths (the server's
//! message and a non-zero exit, an unreachable URL named, nothing written or half-applied).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::Value;
use stagecraft_tests::{guest, json, temp_dir, Server, ADMIN_KEY};

/// What one CLI invocation did.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn ok(self) -> Out {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// The real `stagecraft` binary (the tests crate builds it as `stagecraft-server`; it runs
/// `stagecraft::cli::main`, every subcommand included).
fn stagecraft() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_stagecraft-server"));
    cmd.env_remove("STAGECRAFT_URL")
        .env_remove("STAGECRAFT_KEY")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    cmd
}

async fn run(mut cmd: tokio::process::Command, args: &[&str]) -> Out {
    let out = cmd.args(args).output().await.expect("run stagecraft");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `stagecraft <args>` against `s` with `key` (from the environment, as users set it).
async fn cli(s: &Server, key: &str, args: &[&str]) -> Out {
    let mut cmd = stagecraft();
    cmd.env("STAGECRAFT_URL", &s.base)
        .env("STAGECRAFT_KEY", key);
    run(cmd, args).await
}

fn write_guest(dir: &Path, name: &str) -> String {
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, guest(name)).unwrap();
    path.to_str().unwrap().to_string()
}

async fn lead(s: &Server, body: Value) -> Value {
    s.record(ADMIN_KEY, body).await
}

#[tokio::test]
async fn push_enable_dry_run_and_inspect_runs_through_the_cli() {
    let dir = temp_dir();
    let s = Server::start(&dir.path().join("data")).await;
    let dev = s.key(ADMIN_KEY, "developer").await;
    let mover = write_guest(dir.path(), "mover");

    // push: a developer key uploads; the human line names version, hash, size, language.
    let out = cli(&s, &dev, &["push", &mover, "--module", "mover"])
        .await
        .ok();
    assert!(
        out.stdout.starts_with("pushed mover@1  sha256:"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Rust"), "{}", out.stdout);
    let v2 = cli(&s, &dev, &["push", &mover, "--module", "mover", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["size"], guest("mover").len());
    let module = s.get("/v1/modules/mover", ADMIN_KEY).await;
    assert_eq!(module.body["versions"].as_array().unwrap().len(), 2);

    // dry-run on a real record: shows the move, commits nothing.
    let ada = lead(&s, json!({"kind": "lead", "name": "Ada"})).await;
    let ada_id = ada["id"].as_str().unwrap();
    let out = cli(
        &s,
        &dev,
        &[
            "dry-run",
            "mover@1",
            "--record",
            ada_id,
            "--config",
            r#"{"target":"qualified"}"#,
        ],
    )
    .await
    .ok();
    assert!(out.stdout.contains("outcome  ok"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains(&format!("move {ada_id}: new → qualified")),
        "{}",
        out.stdout
    );
    let still = s.get(&format!("/v1/records/{ada_id}"), ADMIN_KEY).await;
    assert_eq!(still.body["stage"], "new");

    // enable: needs an admin key; the server's refusal comes through.
    let out = cli(
        &s,
        &dev,
        &[
            "enable",
            "mover@1",
            "--pipeline",
            "leads",
            "--on",
            "created",
        ],
    )
    .await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with("error: forbidden: ") && out.stderr.contains("yours is developer"),
        "{}",
        out.stderr
    );
    let out = cli(
        &s,
        ADMIN_KEY,
        &[
            "enable",
            "mover@1",
            "--pipeline",
            "Leads",
            "--mode",
            "inline",
            "--on",
            "created",
            "--config",
            r#"{"target":"qualified"}"#,
        ],
    )
    .await
    .ok();
    assert!(
        out.stdout
            .contains("enabled mover@1 on pipeline leads (new binding"),
        "{}",
        out.stdout
    );
    let bindings = s.get("/v1/bindings?pipeline=leads", ADMIN_KEY).await;
    let list = bindings.body["bindings"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    let binding = list[0]["id"].as_str().unwrap().to_string();
    assert_eq!(list[0]["mode"], "inline");
    assert_eq!(list[0]["triggers"][0]["on"], "created");
    assert_eq!(list[0]["triggers"].as_array().unwrap().len(), 1);

    // The module moves a real record (inline: the response shows it).
    let grace = lead(&s, json!({"kind": "lead", "name": "Grace"})).await;
    assert_eq!(grace["stage"], "qualified");
    let grace_id = grace["id"].as_str().unwrap();

    // runs: the table and the JSON both show that run.
    let out = cli(&s, &dev, &["runs", "--record", grace_id]).await.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert!(lines[0].starts_with("RUN"), "{}", out.stdout);
    assert!(
        lines[1].contains("mover@1") && lines[1].contains(" ok "),
        "{}",
        out.stdout
    );
    let runs = cli(&s, &dev, &["runs", "--record", grace_id, "--json"])
        .await
        .ok()
        .json();
    let run_id = runs["runs"][0]["id"].as_str().unwrap().to_string();
    assert!(lines[1].starts_with(&run_id));
    let none = cli(&s, &dev, &["runs", "--outcome", "trap"]).await.ok();
    assert_eq!(none.stdout.trim(), "no runs");

    // logs: the run in full.
    let out = cli(&s, &dev, &["logs", &run_id]).await.ok();
    for want in [
        format!("run      {run_id}"),
        format!("module   mover@1 (binding {binding}, inline)"),
        "outcome  ok".to_string(),
        format!("move {grace_id}: new → qualified"),
        format!("[info] moved {grace_id} to qualified"),
        format!("records.get {grace_id}"),
        "fuel".to_string(),
        "peak memory".to_string(),
    ] {
        assert!(
            out.stdout.contains(&want),
            "missing {want:?} in:\n{}",
            out.stdout
        );
    }
    let raw = cli(&s, &dev, &["logs", &run_id, "--json"])
        .await
        .ok()
        .json();
    assert_eq!(
        raw,
        s.get(&format!("/v1/runs/{run_id}"), ADMIN_KEY).await.body
    );

    // enable another version: the same binding switches (and switching back is the rollback).
    let out = cli(&s, ADMIN_KEY, &["enable", "mover@2", "--pipeline", "leads"])
        .await
        .ok();
    assert!(
        out.stdout.contains("switched from version 1"),
        "{}",
        out.stdout
    );
    let after = s.get(&format!("/v1/bindings/{binding}"), ADMIN_KEY).await;
    assert_eq!(after.body["version"], 2);
    assert_eq!(after.body["mode"], "inline", "options not given are kept");
    assert_eq!(after.body["config"], json!({"target": "qualified"}));
    cli(&s, ADMIN_KEY, &["enable", "mover@1", "--pipeline", "leads"])
        .await
        .ok();
    let back = s.get(&format!("/v1/bindings/{binding}"), ADMIN_KEY).await;
    assert_eq!(back.body["version"], 1);
    let all = s.get("/v1/bindings", ADMIN_KEY).await;
    assert_eq!(all.body["bindings"].as_array().unwrap().len(), 1);

    // A refused change leaves the binding as it was.
    let out = cli(&s, ADMIN_KEY, &["enable", "mover@9", "--pipeline", "leads"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains(r#"error: invalid: module "mover" has no version 9"#),
        "{}",
        out.stderr
    );
    let same = s.get(&format!("/v1/bindings/{binding}"), ADMIN_KEY).await;
    assert_eq!(same.body, back.body);

    // modules: what is uploaded, and which version runs where.
    let out = cli(&s, &dev, &["modules"]).await.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert!(lines[1].starts_with("mover   2  "), "{}", out.stdout);
    let out = cli(&s, &dev, &["modules", "mover"]).await.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(
        lines[1].starts_with("mover@2") && lines[1].ends_with("  -"),
        "{}",
        out.stdout
    );
    assert!(
        lines[2].starts_with("mover@1") && lines[2].ends_with(&format!("leads ({binding})")),
        "{}",
        out.stdout
    );
    let out = cli(&s, &dev, &["modules", "nothing"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.trim(),
        r#"error: not_found: module "nothing" not found"#
    );
}

#[tokio::test]
async fn messages_lists_the_outbox() {
    let dir = temp_dir();
    let s = Server::start(&dir.path().join("data")).await;
    let effector = write_guest(dir.path(), "effector");
    cli(&s, ADMIN_KEY, &["push", &effector, "--module", "effector"])
        .await
        .ok();
    cli(
        &s,
        ADMIN_KEY,
        &[
            "enable",
            "effector@1",
            "--pipeline",
            "leads",
            "--mode",
            "inline",
            "--on",
            "created",
            "--config",
            r#"{"channel":"notify","to":"ann"}"#,
            "--grant",
            "channel:notify",
        ],
    )
    .await
    .ok();
    let rec = lead(&s, json!({"kind": "lead", "name": "Ada"})).await;
    let id = rec["id"].as_str().unwrap();

    let out = cli(&s, ADMIN_KEY, &["messages", "--record", id]).await.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert!(lines[0].starts_with("MESSAGE"), "{}", out.stdout);
    assert!(
        lines[1].contains("notify") && lines[1].contains("ann") && lines[1].contains(id),
        "{}",
        out.stdout
    );
    let json = cli(&s, ADMIN_KEY, &["messages", "--record", id, "--json"])
        .await
        .ok()
        .json();
    assert_eq!(json["messages"].as_array().unwrap().len(), 1);
    assert_eq!(json["messages"][0]["to"], "ann");
    let none = cli(&s, ADMIN_KEY, &["messages", "--status", "dead"])
        .await
        .ok();
    assert_eq!(none.stdout.trim(), "no messages");
    // The server checks the flag's value too; the CLI refuses it as usage first.
    let bad = cli(&s, ADMIN_KEY, &["messages", "--status", "lost"]).await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}

#[tokio::test]
async fn errors_carry_the_servers_message_and_a_non_zero_exit() {
    let dir = temp_dir();
    let s = Server::start(&dir.path().join("data")).await;

    // A wrong key: the server's own message.
    let out = cli(&s, "not-a-key", &["runs"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.trim(),
        "error: unauthorized: unknown or revoked API key"
    );
    assert!(out.stdout.is_empty());

    // No key at all: a usage error before anything is sent.
    let mut cmd = stagecraft();
    cmd.env("STAGECRAFT_URL", &s.base);
    let out = run(cmd, &["runs"]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no API key"), "{}", out.stderr);

    // A file that is not a component: the server's invalid_module message, nothing stored.
    let junk = dir.path().join("notes.wasm");
    std::fs::write(&junk, b"these are notes, not WebAssembly").unwrap();
    let expected = s
        .upload(
            ADMIN_KEY,
            "probe",
            b"these are notes, not WebAssembly".to_vec(),
        )
        .await;
    assert_eq!(expected.code(), "invalid_module");
    let out = cli(
        &s,
        ADMIN_KEY,
        &["push", junk.to_str().unwrap(), "--module", "notes"],
    )
    .await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.trim(),
        format!("error: invalid_module: {}", expected.message())
    );
    let gone = s.get("/v1/modules/notes", ADMIN_KEY).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);

    // A file that does not exist is named.
    let out = cli(
        &s,
        ADMIN_KEY,
        &["push", "/nonexistent/rule.wasm", "--module", "x"],
    )
    .await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("/nonexistent/rule.wasm"),
        "{}",
        out.stderr
    );

    // Unknown things are the server's 404s.
    let out = cli(&s, ADMIN_KEY, &["logs", "run_nope"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.trim(),
        r#"error: not_found: run "run_nope" not found"#
    );
    let out = cli(&s, ADMIN_KEY, &["enable", "x@1", "--pipeline", "nowhere"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains(r#"no pipeline with id or name "nowhere""#),
        "{}",
        out.stderr
    );

    // Usage errors exit 2 and name the bad value.
    let out = cli(&s, ADMIN_KEY, &["enable", "mover", "--pipeline", "leads"]).await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("module@version"), "{}", out.stderr);
    let out = cli(
        &s,
        ADMIN_KEY,
        &["enable", "m@1", "--pipeline", "leads", "--on", "moved"],
    )
    .await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains(r#""moved" is not a trigger"#),
        "{}",
        out.stderr
    );
    let out = cli(
        &s,
        ADMIN_KEY,
        &["enable", "m@1", "--pipeline", "leads", "--config", "[1]"],
    )
    .await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("--config: expected a JSON object"),
        "{}",
        out.stderr
    );

    // An unreachable server is named by its URL (exit 3).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let mut cmd = stagecraft();
    cmd.env("STAGECRAFT_KEY", ADMIN_KEY);
    let out = run(cmd, &["runs", "--url", &url]).await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with(&format!("error: cannot reach the server at {url}: ")),
        "{}",
        out.stderr
    );
    let out = run(stagecraft(), &["runs", "--url", "ftp://x", "--key", "k"]).await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("is not an http(s) URL"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn new_refuses_to_overwrite_and_needs_an_sdk() {
    let dir = temp_dir();
    let taken = dir.path().join("taken");
    std::fs::create_dir_all(&taken).unwrap();
    std::fs::write(taken.join("keep.txt"), "mine").unwrap();
    let out = run(stagecraft(), &["new", taken.to_str().unwrap()]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("already exists and is not empty; nothing was written"),
        "{}",
        out.stderr
    );
    let entries: Vec<_> = std::fs::read_dir(&taken).unwrap().collect();
    assert_eq!(entries.len(), 1, "nothing was added");
    assert_eq!(
        std::fs::read_to_string(taken.join("keep.txt")).unwrap(),
        "mine"
    );

    let fresh = dir.path().join("fresh");
    let out = run(
        stagecraft(),
        &[
            "new",
            fresh.to_str().unwrap(),
            "--sdk-path",
            "/nonexistent/sdk",
        ],
    )
    .await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("--sdk-path /nonexistent/sdk: no stagecraft-sdk crate there"),
        "{}",
        out.stderr
    );
    assert!(!fresh.exists(), "nothing was written");

    let out = run(
        stagecraft(),
        &["new", dir.path().join("9lives").to_str().unwrap()],
    )
    .await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("is not a crate name"), "{}", out.stderr);

    // An empty directory is fine to fill.
    let empty = dir.path().join("empty-rule");
    std::fs::create_dir_all(&empty).unwrap();
    run(stagecraft(), &["new", empty.to_str().unwrap()])
        .await
        .ok();
    let manifest = std::fs::read_to_string(empty.join("Cargo.toml")).unwrap();
    assert!(manifest.contains(r#"name = "empty-rule""#), "{manifest}");
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../guest-sdk")
        .canonicalize()
        .unwrap();
    assert!(
        manifest.contains(&format!(
            r#"stagecraft-sdk = {{ path = "{}" }}"#,
            sdk.display()
        )),
        "{manifest}"
    );
    for f in ["src/lib.rs", "README.md", ".gitignore"] {
        assert!(empty.join(f).is_file(), "{f}");
    }

    // build: a directory without a crate, and a toolchain without the wasm target, are named.
    let out = run(stagecraft(), &["build", "--path", taken.to_str().unwrap()]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("is not a crate directory"),
        "{}",
        out.stderr
    );
    // `echo` as rustc: the "sysroot" it prints has no wasm32-wasip2 standard library.
    let mut cmd = stagecraft();
    cmd.env("RUSTC", "echo");
    let out = run(cmd, &["build", "--path", empty.to_str().unwrap()]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("the Rust target wasm32-wasip2 is not installed")
            && out.stderr.contains("run `rustup target add wasm32-wasip2`"),
        "{}",
        out.stderr
    );
}

/// Where the scaffolded crate builds: a fixed dir under the target dir, so repeated runs are
/// warm.
fn scaffold_target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("cli-scaffolded")
}

/// A command that runs cargo (directly or through `stagecraft build`) on the scaffolded crate,
/// without the outer build's wrappers and flags.
fn for_cargo(mut cmd: tokio::process::Command) -> tokio::process::Command {
    cmd.env("CARGO_TARGET_DIR", scaffold_target());
    for k in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_MAKEFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(k);
    }
    cmd
}

#[tokio::test]
async fn from_new_to_a_pushed_enabled_module_that_moves_a_record() {
    let dir = temp_dir();
    let s = Server::start(&dir.path().join("data")).await;
    let krate = dir.path().join("lead-qualifier");
    let krate_s = krate.to_str().unwrap();

    let out = run(stagecraft(), &["new", krate_s]).await.ok();
    assert!(
        out.stdout.contains("created rule crate lead-qualifier"),
        "{}",
        out.stdout
    );
    // The next commands, as they run here: this binary is not on PATH, so its full path.
    let me = Path::new(env!("CARGO_BIN_EXE_stagecraft-server"))
        .canonicalize()
        .unwrap();
    for want in [
        "next:".to_string(),
        format!("  cd {krate_s}"),
        "  cargo test".to_string(),
        format!("  {} build", me.display()),
    ] {
        assert!(
            out.stdout.lines().any(|l| l == want),
            "missing {want:?} in:\n{}",
            out.stdout
        );
    }

    // The crate's dependencies are pinned to the workspace's lock file (cargo drops what it
    // does not use), so it builds the versions Stagecraft is tested with.
    assert_eq!(
        std::fs::read_to_string(krate.join("Cargo.lock")).unwrap(),
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock"))
            .unwrap()
    );

    // The scaffolded unit tests pass on the SDK's mock host.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut test = for_cargo(tokio::process::Command::new(cargo));
    test.current_dir(&krate);
    let out = run(test, &["test", "--quiet"]).await;
    assert_eq!(
        out.code, 0,
        "cargo test failed:\n{}\n{}",
        out.stdout, out.stderr
    );
    assert!(out.stdout.contains("3 passed"), "{}", out.stdout);

    // build prints the component's path.
    let out = run(for_cargo(stagecraft()), &["build", "--path", krate_s])
        .await
        .ok();
    let component = PathBuf::from(out.stdout.trim());
    assert!(component.starts_with(scaffold_target()), "{}", out.stdout);
    assert!(component.ends_with("wasm32-wasip2/release/lead_qualifier.wasm"));
    let bytes = std::fs::read(&component).unwrap();
    assert_eq!(&bytes[..8], b"\0asm\x0d\x00\x01\x00", "a component");

    // push, dry-run, enable: CLI only.
    let out = cli(
        &s,
        ADMIN_KEY,
        &[
            "push",
            component.to_str().unwrap(),
            "--module",
            "lead-qualifier",
        ],
    )
    .await
    .ok();
    assert!(
        out.stdout.starts_with("pushed lead-qualifier@1"),
        "{}",
        out.stdout
    );
    let ada = lead(
        &s,
        json!({"kind": "lead", "name": "Ada", "custom": {"score": 90}}),
    )
    .await;
    let ada_id = ada["id"].as_str().unwrap();
    let out = cli(
        &s,
        ADMIN_KEY,
        &["dry-run", "lead-qualifier@1", "--record", ada_id],
    )
    .await
    .ok();
    assert!(
        out.stdout
            .contains(&format!("move {ada_id}: new → qualified")),
        "{}",
        out.stdout
    );
    cli(
        &s,
        ADMIN_KEY,
        &[
            "enable",
            "lead-qualifier@1",
            "--pipeline",
            "leads",
            "--mode",
            "inline",
            "--on",
            "created",
            "--on",
            "updated:score",
            "--config",
            r#"{"threshold": 60}"#,
        ],
    )
    .await
    .ok();

    // A lead below the threshold stays; raising its score moves it.
    let grace = lead(
        &s,
        json!({"kind": "lead", "name": "Grace", "custom": {"score": 40}}),
    )
    .await;
    assert_eq!(grace["stage"], "new");
    let id = grace["id"].as_str().unwrap();
    let moved = s
        .patch(
            &format!("/v1/records/{id}"),
            ADMIN_KEY,
            json!({"custom": {"score": 75}}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    assert_eq!(moved.body["stage"], "qualified");
    let stored = s.get(&format!("/v1/records/{id}"), ADMIN_KEY).await;
    assert_eq!(stored.body["stage"], "qualified");

    // runs and logs show both runs and why.
    let runs = cli(&s, ADMIN_KEY, &["runs", "--record", id, "--json"])
        .await
        .ok()
        .json();
    let runs = runs["runs"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 2, "{runs:?}");
    let updated = runs.iter().find(|r| r["event_kind"] == "updated").unwrap();
    let created = runs.iter().find(|r| r["event_kind"] == "created").unwrap();
    let out = cli(&s, ADMIN_KEY, &["logs", updated["id"].as_str().unwrap()])
        .await
        .ok();
    assert!(
        out.stdout.contains(&format!("move {id}: new → qualified")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("[info] {id} scored 75, moved to qualified")),
        "{}",
        out.stdout
    );
    let out = cli(&s, ADMIN_KEY, &["logs", created["id"].as_str().unwrap()])
        .await
        .ok();
    assert!(out.stdout.contains("effects: none"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains(&format!("[info] {id} scored 40, below 60")),
        "{}",
        out.stdout
    );
    let table = cli(&s, ADMIN_KEY, &["runs", "--module", "lead-qualifier"])
        .await
        .ok();
    assert_eq!(table.stdout.lines().count(), 3, "{}", table.stdout);
}

/// The next stdout line as JSON. The timeout bounds a hang; it asserts no timing.
async fn next_json(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) -> Value {
    let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
        .await
        .expect("a line within a minute")
        .unwrap()
        .expect("stdout stays open");
    serde_json::from_str(&line).unwrap()
}

#[tokio::test]
async fn runs_follow_prints_new_runs_until_ctrl_c() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let dir = temp_dir();
    let s = Server::start(&dir.path().join("data")).await;
    s.upload_guest(ADMIN_KEY, "mover", "mover").await;
    s.bind(
        ADMIN_KEY,
        json!({"pipeline": "leads", "module": "mover", "version": 1, "mode": "inline",
               "triggers": [{"on": "created"}]}),
    )
    .await;
    let before = lead(&s, json!({"kind": "lead", "name": "Ada"})).await;

    let mut cmd = stagecraft();
    cmd.env("STAGECRAFT_URL", &s.base)
        .env("STAGECRAFT_KEY", ADMIN_KEY)
        .args(["runs", "--follow", "--json", "--interval", "0.2"])
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The existing run first, then each new one as it appears, one JSON document per line.
    let first = next_json(&mut lines).await;
    assert_eq!(first["record"], before["id"]);
    let after = lead(&s, json!({"kind": "lead", "name": "Grace"})).await;
    let second = next_json(&mut lines).await;
    assert_eq!(second["record"], after["id"]);
    assert_eq!(second["outcome"]["kind"], "ok");

    // Ctrl-C ends it cleanly.
    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[tokio::test]
async fn records_are_listed_searched_shown_created_and_moved() {
    let dir = temp_dir();
    let s = Server::start(&dir.path().join("data")).await;
    let agent = s.key(ADMIN_KEY, "agent").await;

    // create: typed --field values, core fields by flag or by --field.
    let ada = cli(
        &s,
        &agent,
        &[
            "records",
            "create",
            "--kind",
            "lead",
            "--name",
            "Ada Lovelace",
            "--email",
            "ada@example.com",
            "--field",
            "score=70",
            "--field",
            "vip=true",
            "--field",
            r#"tags=["math","engines"]"#,
            "--field",
            r#"code="007""#,
            "--field",
            "source=web form",
            "--field",
            "phone=5551234",
            "--json",
        ],
    )
    .await
    .ok()
    .json();
    let ada_id = ada["id"].as_str().unwrap().to_string();
    let stored = s
        .get(&format!("/v1/records/{ada_id}"), ADMIN_KEY)
        .await
        .body;
    assert_eq!(
        stored["custom"],
        json!({"score": 70, "vip": true, "tags": ["math", "engines"], "code": "007",
               "source": "web form"})
    );
    assert_eq!(stored["phone"], "5551234", "core text fields stay text");
    assert_eq!(stored["email"], "ada@example.com");
    assert_eq!(
        (stored["pipeline"].as_str(), stored["stage"].as_str()),
        (Some("leads"), Some("new"))
    );
    let out = cli(
        &s,
        &agent,
        &[
            "records",
            "create",
            "--kind",
            "contact",
            "--name",
            "Grace Hopper",
            "--owner",
            "ann",
        ],
    )
    .await
    .ok();
    assert!(
        out.stdout.starts_with("created contact rec_") && out.stdout.contains(r#""Grace Hopper""#),
        "{}",
        out.stdout
    );
    let grace_id = out.stdout.split_whitespace().nth(2).unwrap().to_string();
    for i in 0..3 {
        s.record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": format!("Lead {i}")}),
        )
        .await;
    }

    // list: the API's filters; --search over name and email, any case.
    let out = cli(&s, &agent, &["records"]).await.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{}", out.stdout);
    assert!(lines[0].starts_with("RECORD"), "{}", out.stdout);
    assert!(
        lines[1].starts_with(&ada_id)
            && lines[1].contains("leads/new")
            && lines[1].contains("score=70"),
        "{}",
        out.stdout
    );
    let out = cli(
        &s,
        &agent,
        &["records", "--kind", "contact", "--owner", "ann"],
    )
    .await
    .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert!(lines[1].starts_with(&grace_id), "{}", out.stdout);
    let found = cli(
        &s,
        &agent,
        &["records", "--search", "EXAMPLE.com", "--json"],
    )
    .await
    .ok()
    .json();
    let ids: Vec<&str> = found["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [ada_id.as_str()]);
    let found = cli(
        &s,
        &agent,
        &[
            "records", "--search", "lead ", "--kind", "lead", "--limit", "2", "--json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(found["records"].as_array().unwrap().len(), 2, "{found}");
    let none = cli(&s, &agent, &["records", "--search", "nobody"])
        .await
        .ok();
    assert_eq!(none.stdout.trim(), "no records");

    // move: the record's stage, through the API (409/422 are the server's).
    let out = cli(&s, &agent, &["records", "move", &ada_id, "contacted"])
        .await
        .ok();
    assert_eq!(
        out.stdout.trim(),
        format!("moved {ada_id} to leads/contacted (version 2)")
    );
    let stored = s
        .get(&format!("/v1/records/{ada_id}"), ADMIN_KEY)
        .await
        .body;
    assert_eq!(stored["stage"], "contacted");
    let out = cli(&s, &agent, &["records", "move", &ada_id, "nowhere"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    assert!(out.stderr.contains("nowhere"), "{}", out.stderr);
    let same = s
        .get(&format!("/v1/records/{ada_id}"), ADMIN_KEY)
        .await
        .body;
    assert_eq!(same, stored, "a refused move changes nothing");

    // show: the fields, then the events, oldest first.
    let out = cli(&s, &agent, &["records", "show", &ada_id]).await.ok();
    for want in [
        format!("record   {ada_id} (lead, version 2)"),
        "name     Ada Lovelace".to_string(),
        "email    ada@example.com".to_string(),
        "stage    leads/contacted".to_string(),
        "field    score = 70".to_string(),
        "events (the latest 2 of 2):".to_string(),
    ] {
        assert!(
            out.stdout.lines().any(|l| l == want),
            "missing {want:?} in:\n{}",
            out.stdout
        );
    }
    let events: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("  ")).collect();
    assert!(events[0].ends_with("created"), "{}", out.stdout);
    assert!(
        events[1].ends_with("stage_changed new → contacted"),
        "{}",
        out.stdout
    );
    let shown = cli(
        &s,
        &agent,
        &["records", "show", &ada_id, "--events", "1", "--json"],
    )
    .await
    .ok()
    .json();
    assert_eq!(shown["record"], stored);
    assert_eq!(shown["events"].as_array().unwrap().len(), 1);
    assert_eq!(shown["events"][0]["type"], "stage_changed");

    // Bad input: named before anything is sent, or the server's own refusal; nothing created.
    let before = s.get("/v1/records?limit=500", ADMIN_KEY).await.body["records"]
        .as_array()
        .unwrap()
        .len();
    let out = cli(
        &s,
        &agent,
        &[
            "records", "create", "--kind", "lead", "--name", "X", "--field", "score",
        ],
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("is not NAME=VALUE"), "{}", out.stderr);
    let out = cli(
        &s,
        &agent,
        &[
            "records", "create", "--kind", "lead", "--name", "X", "--field", "name=Y",
        ],
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("--field name: that field is given twice"),
        "{}",
        out.stderr
    );
    let out = cli(
        &s,
        &agent,
        &[
            "records",
            "create",
            "--kind",
            "lead",
            "--name",
            "X",
            "--field",
            "email=not-an-address",
        ],
    )
    .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("is not an email address"),
        "{}",
        out.stderr
    );
    let out = cli(&s, &agent, &["records", "--kind", "lead", "show", &ada_id]).await;
    assert_eq!(
        out.code, 2,
        "list filters do not mix with a subcommand: {}",
        out.stderr
    );
    let after = s.get("/v1/records?limit=500", ADMIN_KEY).await.body["records"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(after, before);
    let out = cli(&s, &agent, &["records", "show", "rec_nope"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.trim(),
        r#"error: not_found: record "rec_nope" not found"#
    );
}

#[tokio::test]
async fn pipelines_are_listed_and_created() {
    let dir = temp_dir();
    let s = Server::start(&dir.path().join("data")).await;
    let out = cli(
        &s,
        ADMIN_KEY,
        &["pipelines", "create", "qualifying", "--kind", "lead"],
    )
    .await
    .ok();
    assert_eq!(
        out.stdout.trim(),
        "created lead pipeline qualifying: new → contacted → qualified → converted (won) → disqualified (lost)"
    );
    let p = s.get("/v1/pipelines/qualifying", ADMIN_KEY).await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.body["kind"], "lead");
    let out = cli(&s, ADMIN_KEY, &["pipelines"]).await.ok();
    let ids: Vec<&str> = out
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(ids, ["deals", "leads", "qualifying"], "{}", out.stdout);
    // A lead created there starts in its first stage.
    let rec = cli(
        &s,
        ADMIN_KEY,
        &[
            "records",
            "create",
            "--kind",
            "lead",
            "--pipeline",
            "qualifying",
            "--name",
            "Ada",
            "--json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(
        (rec["pipeline"].as_str(), rec["stage"].as_str()),
        (Some("qualifying"), Some("new"))
    );
    let again = cli(&s, ADMIN_KEY, &["pipelines", "create", "qualifying"]).await;
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
}

#[tokio::test]
async fn keys_are_listed_created_and_revoked() {
    let dir = temp_dir();
    let s = Server::start(&dir.path().join("data")).await;

    let out = cli(
        &s,
        ADMIN_KEY,
        &["keys", "create", "--role", "agent", "--user", "ann"],
    )
    .await
    .ok();
    let secret = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .to_string();
    assert!(
        out.stdout.contains("a new agent key key_"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(r#"("agent key", acting for ann)"#),
        "{}",
        out.stdout
    );
    // The new key works, with its role.
    let me = s.get("/v1/notifications?user=ann", &secret).await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    let dev = cli(
        &s,
        ADMIN_KEY,
        &[
            "keys",
            "create",
            "--role",
            "developer",
            "--name",
            "ci",
            "--json",
        ],
    )
    .await
    .ok()
    .json();
    let dev_id = dev["id"].as_str().unwrap().to_string();
    let dev_secret = dev["secret"].as_str().unwrap().to_string();

    let out = cli(&s, ADMIN_KEY, &["keys"]).await.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert!(lines[0].starts_with("KEY"), "{}", out.stdout);
    assert!(
        lines[1].contains("admin + operator") && lines[1].contains("bootstrap"),
        "{}",
        out.stdout
    );
    assert!(
        lines[2].contains("agent") && lines[2].contains("ann"),
        "{}",
        out.stdout
    );
    assert!(
        lines[3].starts_with(&dev_id) && lines[3].contains("developer") && lines[3].contains("ci"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains(&secret) && !out.stdout.contains(&dev_secret));

    // Only admins manage keys: the server's refusal.
    let out = cli(&s, &dev_secret, &["keys"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with("error: forbidden: "),
        "{}",
        out.stderr
    );
    let out = cli(&s, ADMIN_KEY, &["keys", "create", "--role", "owner"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);

    // revoke: the key stops working at once; an unknown id is the server's 404.
    let out = cli(&s, ADMIN_KEY, &["keys", "revoke", &dev_id]).await.ok();
    assert_eq!(out.stdout.trim(), format!("revoked {dev_id}"));
    let gone = s.get("/v1/runs", &dev_secret).await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
    let out = cli(&s, ADMIN_KEY, &["keys", "revoke", &dev_id]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("not_found"), "{}", out.stderr);
}

/// Starts the real binary's `serve` on `data` and returns it with its stdout up to the
/// `listening on` line.
async fn serve(data: &Path, bootstrap: &str) -> (tokio::process::Child, String) {
    use tokio::io::AsyncReadExt;
    let mut child = stagecraft()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("STAGECRAFT_BOOTSTRAP_KEY", bootstrap)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    // The timeout bounds a hang; it asserts no timing.
    tokio::time::timeout(std::time::Duration::from_secs(120), async {
        let mut buf = [0u8; 4096];
        while !seen.contains("listening on ") || !seen.ends_with('\n') {
            let n = stdout.read(&mut buf).await.unwrap();
            assert!(n > 0, "the server exited before listening:\n{seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await
    .expect("the server listens within two minutes");
    (child, seen)
}

/// Stops a server started by [`serve`] as Ctrl-C would, and waits until it has exited.
async fn stop(mut child: tokio::process::Child) {
    let pid = child.id().unwrap().to_string();
    let sent = tokio::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
    assert!(sent.success());
    let status = child.wait().await.unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_lost_admin_key_is_recovered_offline() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();

    // A data dir that is not one: refused, nothing created.
    let out = run(stagecraft(), &["admin-key", "--data-dir", data_s]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("no Stagecraft data in") && out.stderr.contains("nothing was written"),
        "{}",
        out.stderr
    );
    assert!(!data.exists(), "nothing was created");

    // A store without a tenant: nothing to recover, nothing written.
    let empty = dir.path().join("empty");
    drop(stagecraft::store::Store::open(&empty.join("db")).unwrap());
    let out = run(
        stagecraft(),
        &["admin-key", "--data-dir", empty.to_str().unwrap()],
    )
    .await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("has no tenant yet"), "{}", out.stderr);
    let store = stagecraft::store::Store::open(&empty.join("db")).unwrap();
    assert!(store.tenants().unwrap().is_empty());
    drop(store);

    // The first start prints the key; a later start says how to recover a lost one.
    let (server, first) = serve(&data, ADMIN_KEY).await;
    assert!(
        first.contains(&format!("admin key: {ADMIN_KEY}")),
        "{first}"
    );
    assert!(!first.contains("lost it?"), "{first}");

    // While it runs, the data dir is refused and nothing is added.
    let out = run(stagecraft(), &["admin-key", "--data-dir", data_s]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("is in use by a running server: stop it first")
            && out.stderr.contains("nothing was written"),
        "{}",
        out.stderr
    );
    stop(server).await;

    let out = run(
        stagecraft(),
        &["admin-key", "--data-dir", data_s, "--tenant", "acme"],
    )
    .await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains(r#"no tenant "acme" (tenants: default)"#),
        "{}",
        out.stderr
    );

    let out = run(stagecraft(), &["admin-key", "--data-dir", data_s])
        .await
        .ok();
    let secret = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("admin key: "))
        .unwrap()
        .to_string();
    assert!(out.stdout.contains("for tenant default"), "{}", out.stdout);
    let op = run(
        stagecraft(),
        &["admin-key", "--data-dir", data_s, "--operator", "--json"],
    )
    .await
    .ok()
    .json();
    let op_secret = op["secret"].as_str().unwrap().to_string();
    assert_eq!(op["tenant"], "default");
    assert_eq!(op["key"]["operator"], true);

    let (server, second) = serve(&data, "another-bootstrap-key-0123").await;
    assert!(
        second.contains(&format!(
            "lost it? stop the server and run: stagecraft admin-key --data-dir {data_s}"
        )),
        "{second}"
    );
    assert!(
        second.contains("STAGECRAFT_BOOTSTRAP_KEY is ignored"),
        "{second}"
    );
    assert!(!second.contains("admin key: "), "{second}");
    let base = format!(
        "http://{}",
        second
            .lines()
            .find_map(|l| l.strip_prefix("listening on "))
            .unwrap()
    );
    let c = reqwest::Client::new();
    // The recovered key is an admin key of tenant default; only the operator one may create
    // tenants.
    let keys = c
        .get(format!("{base}/v1/keys"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(keys.status(), StatusCode::OK);
    let keys: Value = keys.json().await.unwrap();
    assert_eq!(keys["keys"].as_array().unwrap().len(), 3, "{keys}");
    for (key, want) in [
        (&secret, StatusCode::FORBIDDEN),
        (&op_secret, StatusCode::CREATED),
    ] {
        let tenant = c
            .post(format!("{base}/v1/tenants"))
            .bearer_auth(key)
            .json(&json!({"id": format!("t{}", want.as_u16()), "name": "T"}))
            .send()
            .await
            .unwrap();
        assert_eq!(tenant.status(), want);
    }
    stop(server).await;

    // Two tenants and one of them is default: default is picked; --tenant picks another.
    let out = run(
        stagecraft(),
        &[
            "admin-key",
            "--data-dir",
            data_s,
            "--tenant",
            "t201",
            "--json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(out["tenant"], "t201");
}

#[tokio::test]
async fn serve_help_shows_only_what_serve_takes() {
    let out = run(stagecraft(), &["serve", "--help"]).await.ok();
    for want in [
        "--data-dir",
        "--listen",
        "--demo",
        "--retention-days",
        "STAGECRAFT_BOOTSTRAP_KEY",
        "stagecraft admin-key",
    ] {
        assert!(
            out.stdout.contains(want),
            "missing {want} in:\n{}",
            out.stdout
        );
    }
    for unwanted in [
        "--url",
        "--key",
        "--json",
        "STAGECRAFT_URL",
        "STAGECRAFT_KEY ",
    ] {
        assert!(
            !out.stdout.contains(unwanted),
            "{unwanted} in:\n{}",
            out.stdout
        );
    }
    let out = run(stagecraft(), &["serve", "--key", "k"]).await;
    assert_eq!(out.code, 2, "serve takes no --key: {}", out.stderr);
    // Client commands take them (after the subcommand).
    let out = run(stagecraft(), &["runs", "--help"]).await.ok();
    for want in [
        "--url",
        "--key",
        "--json",
        "STAGECRAFT_URL",
        "STAGECRAFT_KEY",
    ] {
        assert!(
            out.stdout.contains(want),
            "missing {want} in:\n{}",
            out.stdout
        );
    }
}

#[tokio::test]
async fn dry_run_without_a_record_names_the_flags() {
    let dir = temp_dir();
    let s = Server::start(&dir.path().join("data")).await;
    s.upload_guest(ADMIN_KEY, "mover", "mover").await;
    let out = cli(&s, ADMIN_KEY, &["dry-run", "mover@1"]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("--record") && out.stderr.contains("--event"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("\"record\""), "{}", out.stderr);
    // An inbound event needs no record.
    let out = cli(
        &s,
        ADMIN_KEY,
        &[
            "dry-run",
            "mover@1",
            "--kind",
            r#"{"type":"inbound","name":"ping","payload":{}}"#,
        ],
    )
    .await
    .ok();
    assert!(out.stdout.contains("outcome"), "{}", out.stdout);
}

#[tokio::test]
async fn a_closed_stdout_ends_quietly() {
    let dir = temp_dir();
    let s = Server::start(&dir.path().join("data")).await;
    for i in 0..3 {
        s.record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": format!("Lead {i}")}),
        )
        .await;
    }
    // The reader is gone before the command writes anything (`… | head -0`), so every
    // write meets a broken pipe, every time.
    for args in [
        &["messages"][..],
        &["records"],
        &["records", "--json"],
        &["runs"],
        &["keys"],
        &["pipelines"],
        &["modules"],
    ] {
        let mut cmd = stagecraft();
        cmd.env("STAGECRAFT_URL", &s.base)
            .env("STAGECRAFT_KEY", ADMIN_KEY)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

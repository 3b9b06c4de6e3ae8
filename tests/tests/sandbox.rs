//! The sandbox through the API: real components built from source, uploaded over HTTP, run
//! against real records under real limits.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use reqwest::StatusCode;
use stagecraft::config::Config;
use stagecraft_tests::{eventually, guest, json, temp_dir, Server, ADMIN_KEY};

fn outcome(r: &stagecraft_tests::Response) -> &str {
    r.body["outcome"]["kind"].as_str().unwrap_or_default()
}

fn logs(r: &stagecraft_tests::Response) -> String {
    r.body["logs"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|x| {
                    format!(
                        "{}: {}",
                        x["level"].as_str().unwrap_or(""),
                        x["message"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// Instances map a module's initial memory from its artifact file, never from a memfd image:
/// sealing a fresh memfd fails now and then under load (EBUSY), which failed runs of healthy
/// modules (seen in CI with a JavaScript rule: "cannot add seals to the memfd").
#[tokio::test]
async fn module_memory_images_come_from_artifact_files() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let dev = s.key(ADMIN_KEY, "developer").await;
    let r = s.upload(&dev, "mover", guest("mover")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Ada"}))
        .await;
    let r = s
        .dry_run(&dev, "mover", 1, json!({"record": lead["id"]}))
        .await;
    assert_eq!(outcome(&r), "ok", "{}", logs(&r));
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let memfd: Vec<&str> = maps
        .lines()
        .filter(|l| l.contains("wasm-memory-image"))
        .collect();
    assert!(memfd.is_empty(), "memfd memory images: {memfd:?}");
    assert!(
        maps.lines().any(|l| l.contains(".cwasm")),
        "no module artifact is mapped"
    );
}

#[tokio::test]
async fn a_rust_rule_reads_and_moves_without_committing() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let dev = s.key(ADMIN_KEY, "developer").await;
    let r = s.upload(&dev, "mover", guest("mover")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["version"], 1);
    assert_eq!(r.body["language"], "Rust");
    assert_eq!(r.body["hash"].as_str().unwrap().len(), 64);
    let imports: Vec<&str> = r.body["imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("stagecraft:automation/stages@0.2")),
        "{imports:?}"
    );

    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Ada"}))
        .await;
    let id = lead["id"].as_str().unwrap();
    let r = s.dry_run(&dev, "mover", 1, json!({"record": id})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(outcome(&r), "ok", "{}", logs(&r));
    assert_eq!(
        r.body["effects"],
        json!([{"type": "move_stage", "record": id, "from": "new", "to": "contacted"}])
    );
    let log = logs(&r);
    assert!(
        log.contains(&format!("info: moved {id} to contacted")),
        "{log}"
    );
    assert!(log.contains(&format!("stdout: mover saw {id}")), "{log}");
    assert!(r.body["fuel_used"].as_u64().unwrap() > 0);
    assert!(r.body["peak_memory"].as_u64().unwrap() > 0);
    let calls: Vec<&str> = r.body["host_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call"].as_str().unwrap())
        .collect();
    assert_eq!(
        calls,
        vec!["records.get", "config.get", "stages.move-to", "log.write"]
    );

    // The config steers it; a dry-run commits nothing.
    let r = s
        .dry_run(
            &dev,
            "mover",
            1,
            json!({"record": id, "config": {"target": "qualified"}}),
        )
        .await;
    assert_eq!(r.body["effects"][0]["to"], "qualified");
    assert_eq!(
        s.get(&format!("/v1/records/{id}"), ADMIN_KEY).await.body["stage"],
        "new"
    );
    // An invalid target is denied, and the run says so.
    let r = s
        .dry_run(
            &dev,
            "mover",
            1,
            json!({"record": id, "config": {"target": "mars"}}),
        )
        .await;
    assert_eq!(outcome(&r), "denied");
    assert!(r.body["outcome"]["message"]
        .as_str()
        .unwrap()
        .contains("\"mars\" is not in pipeline"));
    assert!(r.body["effects"].as_array().unwrap().is_empty());

    // Agents cannot upload or dry-run; bad dry-run bodies are named.
    let agent = s.key(ADMIN_KEY, "agent").await;
    assert_eq!(
        s.upload(&agent, "mover", guest("mover")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.dry_run(&agent, "mover", 1, json!({"record": id}))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let r = s.dry_run(&dev, "mover", 1, json!({})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = s
        .dry_run(&dev, "mover", 1, json!({"record": id, "event": "evt_x"}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.message().contains("not both"), "{}", r.message());
    assert_eq!(
        s.dry_run(&dev, "mover", 1, json!({"event": "evt_nope"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = s
        .dry_run(&dev, "mover", 1, json!({"record": id, "config": [1]}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.message().contains("config"), "{}", r.message());
    assert_eq!(
        s.dry_run(&dev, "mover", 9, json!({"record": id}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.dry_run(&dev, "mover", 1, json!({"record": "rec_nope"}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Versions are listed, immutable, numbered; deletion works for unused versions.
    assert_eq!(s.upload_guest(&dev, "mover", "mover").await, 2);
    let m = s.get("/v1/modules/mover", &dev).await;
    assert_eq!(m.body["latest"], 2);
    assert_eq!(m.body["versions"].as_array().unwrap().len(), 2);
    assert_eq!(
        s.delete("/v1/modules/mover/versions/2", &dev).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.get("/v1/modules/mover/versions/2", &dev).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.upload_guest(&dev, "mover", "mover").await,
        3,
        "numbers are never reused"
    );
}

#[tokio::test]
async fn hostile_modules_end_with_their_named_outcome() {
    let dir = temp_dir();
    let mut config = Config::new(dir.path());
    config.limits.timeout = Duration::from_millis(1500);
    config.limits.fuel = 1_000_000_000_000;
    let s = Server::start_with(config).await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Target"}))
        .await;
    let id = lead["id"].as_str().unwrap().to_string();

    // The infinite loop ends at its deadline (`a_spinning_module_never_stops_the_server`
    // shows the server answering meanwhile).
    s.upload_guest(ADMIN_KEY, "spin", "spin").await;
    let r = s.dry_run(ADMIN_KEY, "spin", 1, json!({"record": id})).await;
    assert_eq!(outcome(&r), "timeout", "{:?}", r.body);

    let cases = [
        ("memory-hog", "memory_limit", ""),
        ("deep-recursion", "trap", "stack"),
        ("panicker", "panic", "the rule broke on purpose"),
        ("call-flood", "host_call_limit", ""),
        ("big-message", "message_limit", "exceeds the limit"),
    ];
    for (name, want, text) in cases {
        s.upload_guest(ADMIN_KEY, name, name).await;
        let r = s.dry_run(ADMIN_KEY, name, 1, json!({"record": id})).await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {:?}", r.body);
        assert_eq!(outcome(&r), want, "{name}: {:?}", r.body["outcome"]);
        let described = format!("{} {}", r.body["outcome"], logs(&r));
        assert!(described.contains(text), "{name}: {described}");
        assert!(
            r.body["effects"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["type"] != "queue_message"),
            "{name}"
        );
        // And the server still serves.
        assert_eq!(s.get("/healthz", ADMIN_KEY).await.status, StatusCode::OK);
    }

    // File and socket attempts are refused and visible; the run is otherwise normal.
    s.upload_guest(ADMIN_KEY, "escape", "escape-artist").await;
    let r = s
        .dry_run(ADMIN_KEY, "escape", 1, json!({"record": id}))
        .await;
    assert_eq!(outcome(&r), "ok", "{:?}", r.body);
    let log = logs(&r);
    assert!(log.contains("warn: file read refused"), "{log}");
    assert!(log.contains("warn: socket refused"), "{log}");
    assert!(
        !log.contains("read a file!") && !log.contains("opened a socket!"),
        "{log}"
    );
    assert_eq!(r.body["effects"][0]["to"], "contacted");
}

/// Hostile kind "sleeping": waits inside WASI take no real time (clocks are virtual, a wait
/// is ready at once and moves them forward), so a sleeper holds its run slot no longer than
/// a spinner and never past its deadline. Sockets, name lookup and stdin cannot wait either.
#[tokio::test]
async fn sleeping_modules_end_at_once_or_at_their_deadline() {
    let dir = temp_dir();
    let mut config = Config::new(dir.path());
    config.limits.timeout = Duration::from_millis(1500);
    config.limits.fuel = 1_000_000_000_000;
    let deadline_us = 1_500_000;
    let s = Server::start_with(config).await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Sleepy"}))
        .await;
    s.upload_guest(ADMIN_KEY, "sleeper", "sleeper").await;
    let cases = [
        ("sleep", "ok", "slept: monotonic 20 s, wall 20 s"),
        ("far_instant", "ok", "the far instant came"),
        ("sleep_forever", "timeout", ""),
        ("tcp", "ok", "warn: tcp socket refused"),
        ("udp", "ok", "warn: udp socket refused"),
        ("lookup", "ok", "warn: name lookup refused"),
        ("stdin", "ok", "info: stdin gave 0 bytes"),
    ];
    for (what, want, text) in cases {
        let started = std::time::Instant::now();
        let r = s
            .dry_run(
                ADMIN_KEY,
                "sleeper",
                1,
                json!({"record": lead["id"], "config": {"do": what}}),
            )
            .await;
        let took = started.elapsed();
        assert_eq!(r.status, StatusCode::OK, "{what}: {:?}", r.body);
        assert_eq!(outcome(&r), want, "{what}: {:?}", r.body);
        assert!(logs(&r).contains(text), "{what}: {}", logs(&r));
        // The run itself is bounded by its deadline (with room for a loaded machine to
        // notice it), never by what the guest asked to wait for.
        let ran = r.body["duration_us"].as_u64().unwrap();
        assert!(ran < 2 * deadline_us, "{what} ran {ran} µs");
        assert!(took < Duration::from_secs(15), "{what} took {took:?}");
    }
}

#[tokio::test]
async fn fuel_runs_out_before_a_generous_deadline() {
    let dir = temp_dir();
    let mut config = Config::new(dir.path());
    config.limits.fuel = 20_000_000;
    config.limits.timeout = Duration::from_secs(30);
    let s = Server::start_with(config).await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "T"}))
        .await;
    s.upload_guest(ADMIN_KEY, "spin", "spin").await;
    let r = s
        .dry_run(ADMIN_KEY, "spin", 1, json!({"record": lead["id"]}))
        .await;
    assert_eq!(outcome(&r), "fuel_exhausted", "{:?}", r.body);
    assert_eq!(r.body["fuel_used"], 20_000_000);
}

/// The server answers while a module spins. The spinner is bounded by fuel, not by a wall
/// deadline: fuel burns only while its thread gets the CPU, so on a loaded machine the loop
/// lasts longer just as requests do, and the check does not depend on how fast a request is
/// served (about 2 s of CPU here; a request takes milliseconds of it).
#[tokio::test]
async fn a_spinning_module_never_stops_the_server() {
    let dir = temp_dir();
    let mut config = Config::new(dir.path());
    config.limits.fuel = 40_000_000_000;
    config.limits.timeout = Duration::from_secs(600);
    let s = std::sync::Arc::new(Server::start_with(config).await);
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Target"}))
        .await;
    let id = lead["id"].as_str().unwrap().to_string();
    s.upload_guest(ADMIN_KEY, "spin", "spin").await;
    let spinning = {
        let (s, id) = (s.clone(), id.clone());
        tokio::spawn(async move { s.dry_run(ADMIN_KEY, "spin", 1, json!({"record": id})).await })
    };
    let sandbox = s.state.sandbox.clone();
    eventually("the loop runs", 400, || {
        let in_use = sandbox.slots_in_use("default").1;
        async move { (in_use == 1).then_some(()) }
    })
    .await;
    let r = s.get(&format!("/v1/records/{id}"), ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(s.get("/healthz", ADMIN_KEY).await.status, StatusCode::OK);
    assert_eq!(
        s.state.sandbox.slots_in_use("default").1,
        1,
        "the server answered while the loop was still running"
    );
    let r = spinning.await.unwrap();
    assert_eq!(outcome(&r), "fuel_exhausted", "{:?}", r.body);
}

/// A component in text form, for uploads no toolchain would produce.
fn component(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("valid wat")
}

#[tokio::test]
async fn bad_uploads_are_refused_by_name_and_leave_no_trace() {
    let dir = temp_dir();
    let mut config = Config::new(dir.path());
    config.limits.module_bytes = 4 * 1024 * 1024;
    let s = Server::start_with(config).await;
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str, &str)> = vec![
        (
            "empty",
            vec![],
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_module",
            "empty",
        ),
        (
            "random",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_module",
            "not a WebAssembly binary",
        ),
        (
            "core",
            wat::parse_str("(module (func (export \"handle\")))").unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_module",
            "core WebAssembly module, not a component",
        ),
        (
            "http-serve-import",
            component(
                r#"(component (import "wasi:http/incoming-handler@0.2.0" (instance (export "handle" (func)))))"#,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "forbidden_import",
            "wasi:http/incoming-handler@0.2.0",
        ),
        (
            "http-serve",
            component(
                r#"(component (instance $i) (export "wasi:http/incoming-handler@0.2.0" (instance $i)))"#,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "forbidden_export",
            "cannot serve HTTP",
        ),
        (
            "http-other",
            component(r#"(component (import "wasi:http/proxy-config@0.2.0" (instance)))"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "forbidden_import",
            "wasi:http/proxy-config@0.2.0",
        ),
        (
            "future",
            component(r#"(component (import "stagecraft:automation/records@1.0.0" (instance)))"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "forbidden_import",
            "incompatible version",
        ),
        (
            "stranger",
            component(r#"(component (import "acme:tools/steal@1.0.0" (instance)))"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "forbidden_import",
            "acme:tools/steal@1.0.0",
        ),
        (
            "no-handle",
            component("(component)"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_module",
            "does not export `handle`",
        ),
        (
            "broken",
            {
                let mut b = guest("mover");
                b.truncate(b.len() / 2);
                b
            },
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_module",
            "invalid",
        ),
        (
            "huge",
            {
                let mut b = guest("mover");
                b.resize(5 * 1024 * 1024, 0);
                b
            },
            StatusCode::PAYLOAD_TOO_LARGE,
            "module_too_large",
            "limit",
        ),
    ];
    for (name, bytes, status, code, text) in cases {
        let r = s.upload(ADMIN_KEY, name, bytes).await;
        assert_eq!(r.status, status, "{name}: {:?}", r.body);
        assert_eq!(r.code(), code, "{name}: {:?}", r.body);
        assert!(r.message().contains(text), "{name}: {}", r.message());
        assert_eq!(
            s.get(&format!("/v1/modules/{name}"), ADMIN_KEY)
                .await
                .status,
            StatusCode::NOT_FOUND,
            "{name}"
        );
    }
    assert!(s.get("/v1/modules", ADMIN_KEY).await.body["modules"]
        .as_array()
        .unwrap()
        .is_empty());
    let stored: Vec<_> = std::fs::read_dir(dir.path().join("modules"))
        .unwrap()
        .collect();
    assert!(
        stored.is_empty(),
        "no artifacts from rejected uploads: {stored:?}"
    );
    let r = s.upload(ADMIN_KEY, "bad name!", guest("mover")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_restart_serves_modules_without_recompiling() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    s.upload_guest(ADMIN_KEY, "mover", "mover").await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Ada"}))
        .await;
    let s = s.restart().await;
    let r = s
        .dry_run(ADMIN_KEY, "mover", 1, json!({"record": lead["id"]}))
        .await;
    assert_eq!(outcome(&r), "ok", "{:?}", r.body);
    let stats = s.state.sandbox.stats();
    assert_eq!(
        stats.compiles, 0,
        "served from the precompiled artifact: {stats:?}"
    );
    assert_eq!(stats.artifact_loads, 1, "{stats:?}");
}

#[tokio::test]
async fn runs_are_deterministic_even_with_clocks_and_randomness() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    s.upload_guest(ADMIN_KEY, "clock", "clock-random").await;
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Ada"}))
        .await;
    let id = lead["id"].as_str().unwrap();
    let events = s.get(&format!("/v1/events?record={id}"), ADMIN_KEY).await;
    let event = &events.body["events"][0];
    let first = s
        .dry_run(ADMIN_KEY, "clock", 1, json!({"event": event["id"]}))
        .await;
    let second = s
        .dry_run(ADMIN_KEY, "clock", 1, json!({"event": event["id"]}))
        .await;
    assert_eq!(outcome(&first), "ok", "{:?}", first.body);
    assert_eq!(first.body["effects"], second.body["effects"]);
    assert_eq!(first.body["logs"], second.body["logs"]);
    assert_eq!(first.body["host_calls"], second.body["host_calls"]);
    let at = chrono::DateTime::parse_from_rfc3339(event["occurred_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        first.body["effects"][0]["value"],
        at.timestamp_millis(),
        "the clock reads the event's time"
    );
    // A different event gives different randomness.
    let other = s
        .dry_run(ADMIN_KEY, "clock", 1, json!({"record": id}))
        .await;
    assert_ne!(
        other.body["effects"][1]["value"],
        first.body["effects"][1]["value"]
    );
}

#[tokio::test]
async fn python_and_javascript_rules_run_like_rust_ones() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    for (module, fixture, language) in [
        ("py-mover", "python-mover", "Python"),
        ("js-mover", "js-mover", "JavaScript"),
    ] {
        let r = s.upload(ADMIN_KEY, module, guest(fixture)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{fixture}: {:?}", r.body);
        assert_eq!(r.body["language"], language, "{fixture}");
        let lead = s
            .record(
                ADMIN_KEY,
                json!({"kind": "lead", "name": format!("{language} lead")}),
            )
            .await;
        let id = lead["id"].as_str().unwrap();
        let r = s.dry_run(ADMIN_KEY, module, 1, json!({"record": id})).await;
        assert_eq!(outcome(&r), "ok", "{fixture}: {:?}", r.body);
        assert_eq!(
            r.body["effects"],
            json!([{"type": "move_stage", "record": id, "from": "new", "to": "contacted"}]),
            "{fixture}"
        );
        let r = s
            .dry_run(
                ADMIN_KEY,
                module,
                1,
                json!({"record": id, "config": {"target": "qualified"}}),
            )
            .await;
        assert_eq!(
            r.body["effects"][0]["to"], "qualified",
            "{fixture}: {:?}",
            r.body
        );
        assert!(
            logs(&r).contains("stdout:"),
            "{fixture}: print reaches the run log: {}",
            logs(&r)
        );
    }
}

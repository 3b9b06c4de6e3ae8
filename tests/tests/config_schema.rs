//! Config schemas end to end: a version declares one (the Rust SDK's custom section, or the
//! polyglot build step's), the upload stores it or refuses a bad one, and binding configs are
//! checked against it on create, update and `stagecraft enable`, the 422 naming the JSON
//! path; versions without a schema take any object, as before.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use reqwest::StatusCode;
use serde_json::Value;
use stagecraft_tests::{guest, json, temp_dir, Server, ADMIN_KEY};

/// The lead-scoring example as the host embeds it (built by host/build.rs with the SDK).
fn lead_scoring() -> Vec<u8> {
    stagecraft::demo::EXAMPLES
        .iter()
        .find(|(n, _)| *n == "lead-scoring")
        .unwrap()
        .1
        .to_vec()
}

/// `bytes` with a top-level custom section `name` holding `data` appended.
fn with_section(bytes: &[u8], name: &str, data: &[u8]) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            out.push(if n == 0 { b } else { b | 0x80 });
            if n == 0 {
                break;
            }
        }
    }
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(data);
    let mut out = bytes.to_vec();
    out.push(0);
    leb(body.len(), &mut out);
    out.extend(body);
    out
}

async fn bind(s: &Server, module: &str, config: Value) -> (StatusCode, Value) {
    let r = s
        .post(
            "/v1/bindings",
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": module, "version": 1,
                   "triggers": [{"on": "created"}], "config": config}),
        )
        .await;
    (r.status, r.body)
}

#[tokio::test]
async fn binding_configs_must_match_the_versions_schema() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let r = s.upload(ADMIN_KEY, "lead-scoring", lead_scoring()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let schema = &r.body["config_schema"];
    assert_eq!(schema["type"], "object", "{schema}");
    assert_eq!(schema["properties"]["threshold"]["type"], "integer");
    assert_eq!(
        schema["properties"]["assign"]["enum"],
        json!(["least_busy", "round_robin"])
    );
    assert!(schema["properties"]["team"]["description"]
        .as_str()
        .unwrap()
        .contains("assigned"));
    let r = s
        .get("/v1/modules/lead-scoring/versions/1", ADMIN_KEY)
        .await;
    assert_eq!(&r.body["config_schema"], schema, "stored with the version");

    // Create: a wrong type, an unknown key, a bad enum value — each named by its path.
    for (config, path) in [
        (json!({"threshold": "high"}), "/threshold"),
        (json!({"treshold": 50}), "/treshold"),
        (json!({"assign": "random"}), "/assign"),
        (json!({"team": ["ann", 7]}), "/team/1"),
    ] {
        let (status, body) = bind(&s, "lead-scoring", config.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{config}: {body}");
        assert_eq!(body["error"]["code"], "invalid", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("\"config\" at \"{path}\"")),
            "{config}: {message}"
        );
    }
    assert_eq!(
        s.get("/v1/bindings", ADMIN_KEY).await.body["bindings"],
        json!([]),
        "nothing was created"
    );
    let (status, body) = bind(
        &s,
        "lead-scoring",
        json!({"threshold": 40, "team": ["ann"], "assign": "round_robin"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_string();

    // Update: refused the same way, and nothing changes.
    let r = s
        .patch(
            &format!("/v1/bindings/{id}"),
            ADMIN_KEY,
            json!({"config": {"threshold": 40, "size_points": [{"min": "big"}]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(
        r.message().contains("\"config\" at \"/size_points/0/min\""),
        "{}",
        r.message()
    );
    assert!(
        r.message()
            .contains("\"/size_points/0/points\": is required"),
        "{}",
        r.message()
    );
    let b = s.get(&format!("/v1/bindings/{id}"), ADMIN_KEY).await.body;
    assert_eq!(b["config"]["threshold"], 40);
    assert_eq!(b["revision"], 1);
    let r = s
        .patch(
            &format!("/v1/bindings/{id}"),
            ADMIN_KEY,
            json!({"config": {"threshold": 70}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    // A version without a schema takes any object, as before.
    s.upload_guest(ADMIN_KEY, "mover", "mover").await;
    let r = s.get("/v1/modules/mover/versions/1", ADMIN_KEY).await;
    assert!(r.body.get("config_schema").is_none(), "{:?}", r.body);
    let (status, body) = bind(&s, "mover", json!({"anything": ["goes", 1]})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_bad_or_oversized_schema_refuses_the_upload() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let mover = guest("mover");
    let section = "stagecraft:config-schema";
    for (data, says) in [
        (b"{not json".to_vec(), "is not valid JSON"),
        (b"[\"a\"]".to_vec(), "must be a JSON object"),
        (
            br#"{"type": "object", "properties": {"a": {"type": 7}}}"#.to_vec(),
            "not a usable JSON Schema",
        ),
        (
            br#"{"$ref": "file:///etc/passwd"}"#.to_vec(),
            "outside the schema",
        ),
        (vec![b' '; 32 * 1024 + 1], "the limit is 32768"),
    ] {
        let r = s
            .upload(ADMIN_KEY, "schemed", with_section(&mover, section, &data))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{says}: {:?}",
            r.body
        );
        assert_eq!(r.code(), "invalid_config_schema", "{:?}", r.body);
        assert!(r.message().contains(says), "{says}: {}", r.message());
        assert!(r.message().contains(section), "{}", r.message());
    }
    let r = s.get("/v1/modules/schemed", ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "nothing stored");
}

/// The polyglot build step: guest-sdk/tools/add-config-schema.py on a built component.
fn add_schema(module: &Path, schema: &Value) -> std::process::Output {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/tools/add-config-schema.py");
    let schema_file = module.with_extension("json");
    std::fs::write(&schema_file, schema.to_string()).unwrap();
    std::process::Command::new("python3")
        .arg(script)
        .arg(module)
        .arg(&schema_file)
        .output()
        .expect("python3 runs the build step")
}

#[tokio::test]
async fn the_polyglot_build_step_declares_a_schema_and_enable_checks_it() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let files = temp_dir();
    let module = files.path().join("python-mover.wasm");
    std::fs::write(&module, guest("python-mover")).unwrap();
    let schema = json!({"type": "object",
        "properties": {"target": {"type": "string", "enum": ["contacted", "qualified"]}},
        "additionalProperties": false});
    let out = add_schema(&module, &schema);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Declaring twice is refused by the script itself.
    let again = add_schema(&module, &schema);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already declares"));

    let r = s
        .upload(ADMIN_KEY, "py", std::fs::read(&module).unwrap())
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["config_schema"], schema);
    assert_eq!(r.body["language"], "Python");

    // `stagecraft enable` goes through the same check: the server's 422 names the path.
    let cli = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_stagecraft-server"));
        cmd.env("STAGECRAFT_URL", &s.base)
            .env("STAGECRAFT_KEY", ADMIN_KEY)
            .env("RUST_LOG", "warn")
            .args(args);
        cmd
    };
    let base = ["enable", "py@1", "--pipeline", "leads", "--on", "created"];
    let bad = tokio::task::spawn_blocking({
        let mut cmd = cli(&base);
        cmd.args(["--config", r#"{"target": "won"}"#]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("\"config\" at \"/target\""), "{stderr}");
    assert_eq!(
        s.get("/v1/bindings", ADMIN_KEY).await.body["bindings"],
        json!([])
    );
    let good = tokio::task::spawn_blocking({
        let mut cmd = cli(&base);
        cmd.args(["--config", r#"{"target": "qualified"}"#]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let b = &s.get("/v1/bindings", ADMIN_KEY).await.body["bindings"][0];
    assert_eq!(b["config"]["target"], "qualified");
}

//! Tenants' secrets (issue 20): write-only through the API, sealed at rest under the server
//! key, and put into a module's request by the host — only into the header or query value
//! each secret's grant names, of a granted request, only names the binding's grant lists. The module (which logs its own
//! request headers here), its logs, its run record and every API response hold only the
//! `{{secret:NAME}}` placeholder; the loopback remote receives the value.

#![allow(clippy::unwrap_used)]

#[path = "outhttp/common.rs"]
mod common;

use common::{bind_caller, config, logs, run_once, Remote};
use reqwest::StatusCode;
use serde_json::Value;
use stagecraft::secrets::SecretsKey;
use stagecraft_tests::{json, temp_dir, Server, ADMIN_KEY};

const SECRET: &str = "sk_live_7hQ2-never-seen";

fn keyed(dir: &std::path::Path) -> stagecraft::config::Config {
    let mut c = config(dir, true);
    c.secrets_key = Some(SecretsKey::from_hex(&"5a".repeat(32)).unwrap());
    c
}

/// Every file under `dir`, read as text (lossy).
fn files_text(dir: &std::path::Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.push_str(&String::from_utf8_lossy(&b));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_write_only_and_sealed_at_rest() {
    let dir = temp_dir();
    let s = Server::start_with(keyed(dir.path())).await;
    let r = s
        .call(
            reqwest::Method::PUT,
            "/v1/secrets/API_KEY",
            Some(ADMIN_KEY),
            Some(json!({"value": SECRET})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = s.get("/v1/secrets", ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["secrets"][0]["name"], "API_KEY");
    assert!(!r.body.to_string().contains(SECRET));
    let dev = s.key(ADMIN_KEY, "developer").await;
    for (key, path, body, status, code) in [
        (
            dev.as_str(),
            "/v1/secrets/API_KEY",
            json!({"value": "x"}),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            ADMIN_KEY,
            "/v1/secrets/api-key",
            json!({"value": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            ADMIN_KEY,
            "/v1/secrets/BIG",
            json!({"value": "x".repeat(4097)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            ADMIN_KEY,
            "/v1/secrets/CTL",
            json!({"value": "a\r\nb"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
    ] {
        let r = s
            .call(reqwest::Method::PUT, path, Some(key), Some(body))
            .await;
        assert_eq!(r.status, status, "{path}: {:?}", r.body);
        assert_eq!(r.code(), code, "{path}: {:?}", r.body);
    }
    assert_eq!(
        s.get("/v1/secrets", &dev).await.status,
        StatusCode::FORBIDDEN
    );
    // Sealed at rest: no file of the data dir holds the value.
    assert!(!files_text(dir.path()).contains(SECRET));
    // Kept across a restart, and deleted for good.
    let data = s.stop().await;
    let s = Server::start_with(keyed(&data)).await;
    let r = s.get("/v1/secrets", ADMIN_KEY).await;
    assert_eq!(
        r.body["secrets"].as_array().unwrap().len(),
        1,
        "{:?}",
        r.body
    );
    let r = s.delete("/v1/secrets/API_KEY", ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = s.delete("/v1/secrets/API_KEY", ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    assert!(s.get("/v1/secrets", ADMIN_KEY).await.body["secrets"]
        .as_array()
        .unwrap()
        .is_empty());

    // A server started without a key keeps no secrets, and says so.
    let other = temp_dir();
    let plain = Server::start(other.path()).await;
    let r = plain
        .call(
            reqwest::Method::PUT,
            "/v1/secrets/API_KEY",
            Some(ADMIN_KEY),
            Some(json!({"value": SECRET})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.code(), "secrets_disabled");
    assert!(
        r.message().contains("STAGECRAFT_SECRETS_KEY"),
        "{}",
        r.message()
    );
}

async fn set_secret(s: &Server, name: &str, value: &str) {
    let r = s
        .call(
            reqwest::Method::PUT,
            &format!("/v1/secrets/{name}"),
            Some(ADMIN_KEY),
            Some(json!({"value": value})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_uses_a_secret_it_never_sees() {
    let dir = temp_dir();
    let s = Server::start_with(keyed(dir.path())).await;
    let remote = Remote::start().await;
    set_secret(&s, "API_KEY", SECRET).await;
    let mut grant = remote.grant();
    grant["secrets"] = json!([
        {"name": "API_KEY", "header": "authorization"},
        {"name": "API_KEY", "query": "key"},
    ]);
    let b = bind_caller(
        &s,
        ADMIN_KEY,
        json!({"http": grant}),
        json!({"echo_headers": true, "calls": [{
            "method": "GET",
            "url": remote.url("/echo?q=ada&key={{secret:API_KEY}}"),
            "headers": {"authorization": "Bearer {{secret:API_KEY}}", "x-trace": "plain"},
        }]}),
    )
    .await;
    let (_, run) = run_once(&s, ADMIN_KEY, &b).await;
    assert_eq!(run["outcome"]["kind"], "ok", "{run}");
    let log = logs(&run);
    // The module holds its own request: the placeholder.
    assert!(
        log.contains("header authorization: Bearer {{secret:API_KEY}}"),
        "{log}"
    );
    // The remote got the value, in the header and the query.
    let seen = remote.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0]
        .headers
        .contains(&("authorization".into(), format!("Bearer {SECRET}"))));
    assert!(
        seen[0].path.contains(&format!("key={SECRET}")),
        "{}",
        seen[0].path
    );
    // The remote said it back; the module read the placeholder instead.
    assert!(log.contains("call 1: status 200"), "{log}");
    assert!(
        log.contains("authorization: Bearer {{secret:API_KEY}}"),
        "{log}"
    );
    // Nowhere in the run record, nor in any file of the data dir.
    assert!(!run.to_string().contains(SECRET), "{run}");
    assert_eq!(
        run["http"][0]["url"],
        remote.url("/echo?q=ada&key={{secret:API_KEY}}")
    );
    let runs = s.get("/v1/runs", ADMIN_KEY).await;
    assert!(!runs.body.to_string().contains(SECRET));
    assert!(!files_text(dir.path()).contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_go_only_into_granted_header_and_query_values() {
    let dir = temp_dir();
    let s = Server::start_with(keyed(dir.path())).await;
    let remote = Remote::start().await;
    set_secret(&s, "API_KEY", SECRET).await;
    set_secret(&s, "OTHER", SECRET).await;
    let mut grant = remote.grant();
    grant["secrets"] = json!([
        {"name": "API_KEY", "header": "x-key"},
        {"name": "NOT_SET", "header": "x-key"},
    ]);
    let call = |url: String, header: &str| json!({"method": "GET", "url": url, "headers": {"x-key": header}});
    let b = bind_caller(
        &s,
        ADMIN_KEY,
        json!({"http": grant}),
        json!({"calls": [
            call(remote.url("/ok"), "{{secret:OTHER}}"),
            call(remote.url("/ok/{{secret:API_KEY}}"), "plain"),
            call(remote.url("/ok"), "{{secret:NOT_SET}}"),
        ]}),
    )
    .await;
    let (_, run) = run_once(&s, ADMIN_KEY, &b).await;
    assert_eq!(run["outcome"]["kind"], "ok", "{run}");
    let errors: Vec<&str> = (0..3)
        .map(|i| run["http"][i]["error"].as_str().unwrap_or_default())
        .collect();
    assert!(
        errors[0].starts_with("secret_not_granted: OTHER"),
        "{errors:?}"
    );
    assert!(errors[1].starts_with("secret_misplaced: "), "{errors:?}");
    assert!(errors[2].starts_with("secret_missing: "), "{errors:?}");
    assert!(logs(&run).contains("error denied: "));
    assert_eq!(remote.accepted(), 0, "nothing left");
}

/// The hostile case: a module that may reach a destination which reflects what it is
/// sent (a search endpoint answering its `?q=`) tries to read a secret back by putting the
/// placeholder where the grant does not name it: another query parameter, another header,
/// the granted parameter on the reflecting destination when the grant scopes the secret to
/// another one. Each is refused `secret_misplaced` before anything is sent; the reflecting
/// remote never receives the value and the module never reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_cannot_learn_a_secret_through_a_destination_that_reflects_it() {
    let dir = temp_dir();
    let s = Server::start_with(keyed(dir.path())).await;
    let api = Remote::start().await;
    let search = Remote::start().await;
    set_secret(&s, "API_KEY", SECRET).await;
    let (a, r) = (
        format!("127.0.0.1:{}", api.port),
        format!("127.0.0.1:{}", search.port),
    );
    let grant = json!({"destinations": [a, r], "allow_http": true, "secrets": [
        {"name": "API_KEY", "query": "api_key", "destinations": [a]},
        {"name": "API_KEY", "header": "authorization", "destinations": [a]},
    ]});
    let call =
        |url: String, headers: Value| json!({"method": "GET", "url": url, "headers": headers});
    let b = bind_caller(
        &s,
        ADMIN_KEY,
        json!({"http": grant}),
        json!({"calls": [
            // Another query parameter of a destination that reflects its query.
            call(search.url("/echo?q={{secret:API_KEY}}"), json!({})),
            // The granted parameter, next to the one that is reflected.
            call(search.url("/echo?api_key=x&q=%7B%7Bsecret:API_KEY%7D%7D"), json!({})),
            // Another header.
            call(search.url("/echo"), json!({"x-echo": "{{secret:API_KEY}}"})),
            // The granted places, but on the reflecting destination.
            call(search.url("/echo?api_key={{secret:API_KEY}}"), json!({})),
            call(search.url("/echo"), json!({"authorization": "Bearer {{secret:API_KEY}}"})),
            // Where it is granted: it goes out, and the echo comes back as the placeholder.
            call(api.url("/echo?api_key={{secret:API_KEY}}"), json!({})),
        ]}),
    )
    .await;
    let (_, run) = run_once(&s, ADMIN_KEY, &b).await;
    assert_eq!(run["outcome"]["kind"], "ok", "{run}");
    for i in 0..5 {
        let error = run["http"][i]["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("secret_misplaced: API_KEY may go only into "),
            "call {i}: {error}"
        );
    }
    assert!(run["http"][0]["error"]
        .as_str()
        .unwrap()
        .contains("not into the query parameter q"));
    assert!(run["http"][2]["error"]
        .as_str()
        .unwrap()
        .contains("not into the header x-echo"));
    assert_eq!(
        search.accepted(),
        0,
        "nothing reached the reflecting remote"
    );
    assert_eq!(run["http"][5]["status"], 200, "{run}");
    assert!(api.seen()[0].path.contains(&format!("api_key={SECRET}")));
    let log = logs(&run);
    assert!(log.contains("call 1: error denied: "), "{log}");
    assert!(
        log.contains("call 6: status 200 body /echo?api_key={{secret:API_KEY}}"),
        "{log}"
    );
    assert!(!run.to_string().contains(SECRET), "{run}");
    assert!(!files_text(dir.path()).contains(SECRET));
}

/// Where a secret may go is part of its grant, checked when the binding is saved: a grant by
/// name only (the older form, still read from stored bindings) is refused with the form to
/// use, and so is a place or destination that cannot be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_grants_must_name_their_place_when_a_binding_is_saved() {
    let dir = temp_dir();
    let s = Server::start_with(keyed(dir.path())).await;
    s.upload_guest(ADMIN_KEY, "caller", "caller").await;
    let dest = "api.example.com";
    for (secrets, says) in [
        (
            json!(["API_KEY"]),
            "secrets[0]: secret \"API_KEY\" says not where it may go",
        ),
        (
            json!([{"name": "API_KEY", "header": "authorization", "query": "k"}]),
            "both a header and a query parameter",
        ),
        (
            json!([{"name": "API_KEY", "header": "host"}]),
            "set by the host",
        ),
        (
            json!([{"name": "API_KEY", "query": "a=b"}]),
            "not a query parameter name",
        ),
        (
            json!([{"name": "API_KEY", "query": "k", "destinations": ["other.example.com"]}]),
            "not among the grant's destinations",
        ),
        (
            json!([{"name": "API_KEY", "heder": "authorization"}]),
            "unknown key \"heder\"",
        ),
    ] {
        let r = s
            .post(
                "/v1/bindings",
                ADMIN_KEY,
                json!({"pipeline": "leads", "module": "caller", "version": 1,
                    "triggers": [{"on": "created"}],
                    "grants": {"http": {"destinations": [dest], "secrets": secrets}}}),
            )
            .await;
        // A grant that does not parse is the body's fault (400 `invalid_body`); one that
        // parses but cannot be is a 422. Both name the problem.
        let status = if says.starts_with("unknown key") {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        assert_eq!(r.status, status, "{secrets}: {:?}", r.body);
        assert!(r.message().contains(says), "{secrets}: {}", r.message());
    }
    assert!(s.get("/v1/bindings", ADMIN_KEY).await.body["bindings"]
        .as_array()
        .is_none_or(|b| b.is_empty()));
}

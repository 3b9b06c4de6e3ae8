//! The console's side of outbound HTTP (issue 20), in a real headless Chromium: a run's page
//! shows the HTTP calls its record keeps (method, the URL as the module wrote it — a secret
//! only as its placeholder — status, timing, a body excerpt), and admins set and delete
//! secrets on a Secrets page that never shows a value. Both pages in every language.

#![allow(clippy::unwrap_used)]

#[path = "outhttp/common.rs"]
mod common;

use common::{bind_caller, config, Remote};
use stagecraft::secrets::SecretsKey;
use stagecraft_tests::browser::Browser;
use stagecraft_tests::{json, temp_dir, Server, ADMIN_KEY};

const SECRET: &str = "sk_live_console-never-shown";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_run_shows_its_http_calls_and_secrets_are_set_and_deleted() {
    let dir = temp_dir();
    let mut c = config(dir.path(), true);
    c.secrets_key = Some(SecretsKey::from_hex(&"5a".repeat(32)).unwrap());
    let s = Server::start_with(c).await;
    let remote = Remote::start().await;
    let b = Browser::start().await;
    b.goto(&format!("{}/console/login", s.base)).await;
    b.type_into(&b.find("#key").await, ADMIN_KEY).await;
    b.click(&b.find("#sign-in").await).await;

    // Secrets: none yet; set one; it is listed by name, its value nowhere on the page.
    b.goto(&format!("{}/console/secrets", s.base)).await;
    b.find("#no-secrets").await;
    b.type_into(&b.find("#secret-name").await, "API_KEY").await;
    b.type_into(&b.find("#secret-value").await, SECRET).await;
    b.click(&b.find("#save-secret").await).await;
    b.wait_for_text("Secret API_KEY saved.").await;
    b.find("#secret-API_KEY").await;
    assert!(!b.source().await.contains(SECRET));
    let listed = s.get("/v1/secrets", ADMIN_KEY).await;
    assert_eq!(listed.body["secrets"][0]["name"], "API_KEY");

    // A run that used it: its page lists the call, with the placeholder, never the value.
    let mut grant = remote.grant();
    grant["secrets"] = json!([{"name": "API_KEY", "query": "key"}]);
    let url = remote.url("/echo?key={{secret:API_KEY}}");
    let binding = bind_caller(
        &s,
        ADMIN_KEY,
        json!({"http": grant}),
        json!({"calls": [{"method": "GET", "url": url, "headers": {}}]}),
    )
    .await;
    s.record(ADMIN_KEY, json!({"kind": "lead", "name": "Ada"}))
        .await;
    let runs = s.runs(ADMIN_KEY, &format!("binding={binding}")).await;
    let run = runs[0]["id"].as_str().unwrap().to_string();
    b.goto(&format!("{}/console/runs/{run}", s.base)).await;
    let row = b.text(&b.find("#http-calls #http-1").await).await;
    assert!(row.contains("GET"), "{row}");
    assert!(row.contains(&url), "{row}");
    assert!(row.contains("200"), "{row}");
    assert!(
        row.contains("/echo?key={{secret:API_KEY}}"),
        "the body excerpt: {row}"
    );
    assert!(row.contains(" ms"), "{row}");
    assert!(!b.source().await.contains(SECRET));

    // Every language: both pages render, translated, with no raw key.
    let keys: Vec<String> = stagecraft::console::i18n::keys(stagecraft::console::i18n::Lang::En)
        .unwrap()
        .into_iter()
        .filter(|k| k.contains('-'))
        .collect();
    for (code, title) in [
        ("es", "Secretos"),
        ("pt", "Segredos"),
        ("pl", "Sekrety"),
        ("en", "Secrets"),
    ] {
        for path in [
            "/console/secrets".to_string(),
            format!("/console/runs/{run}"),
        ] {
            b.goto(&format!("{}/console/lang?lang={code}&back={path}", s.base))
                .await;
            let html = b.source().await;
            assert!(html.contains(&format!("lang=\"{code}\"")), "{code} {path}");
            assert!(html.contains(title), "{code} {path}: no {title:?}");
            for key in &keys {
                assert!(
                    !html.contains(&format!(">{key}<")),
                    "{code} {path}: raw key {key}"
                );
            }
        }
    }

    // Deleted from the page: gone from the list and from the API.
    b.goto(&format!("{}/console/secrets", s.base)).await;
    b.click(&b.find("#delete-API_KEY").await).await;
    b.wait_for_text("Secret API_KEY deleted.").await;
    b.find("#no-secrets").await;
    let listed = s.get("/v1/secrets", ADMIN_KEY).await;
    assert!(listed.body["secrets"].as_array().unwrap().is_empty());
}

//! The `enrich-lead` example end to end (issue 20): on lead creation it asks a small
//! enrichment service on 127.0.0.1 — with an API key that is a tenant secret, which the
//! module only names — writes company size and industry, and scores. Without the key the
//! service refuses it, the module logs the failure and scores from what it has.

#![allow(clippy::unwrap_used)]

#[path = "outhttp/common.rs"]
mod common;

use common::{config, logs, Remote};
use reqwest::StatusCode;
use stagecraft::secrets::SecretsKey;
use stagecraft_tests::{json, temp_dir, Server, ADMIN_KEY};

const KEY: &str = "enrich-key-123";

fn enrich_lead() -> Vec<u8> {
    stagecraft::demo::EXAMPLES
        .iter()
        .find(|(n, _)| *n == "enrich-lead")
        .unwrap()
        .1
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrich_lead_writes_what_the_service_says_and_scores() {
    let dir = temp_dir();
    let mut c = config(dir.path(), true);
    c.secrets_key = Some(SecretsKey::from_hex(&"5a".repeat(32)).unwrap());
    let s = Server::start_with(c).await;
    let remote = Remote::start().await;
    let r = s
        .call(
            reqwest::Method::PUT,
            "/v1/secrets/ENRICH_KEY",
            Some(ADMIN_KEY),
            Some(json!({"value": KEY})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = s.upload(ADMIN_KEY, "enrich-lead", enrich_lead()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let mut http = remote.grant();
    http["secrets"] = json!([{"name": "ENRICH_KEY", "header": "authorization"}]);
    let b = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "enrich-lead", "version": 1, "mode": "inline",
                "triggers": [{"on": "created"}],
                "grants": {"fields": ["company_size", "industry", "score"], "http": http},
                "config": {"url": remote.url("/v1/companies")}}),
        )
        .await;
    let lead = s
        .record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": "Ada", "email": "ada@acme.io"}),
        )
        .await;
    assert_eq!(lead["custom"]["company_size"], 1200, "{lead}");
    assert_eq!(lead["custom"]["industry"], "software", "{lead}");
    assert_eq!(lead["custom"]["score"], 50, "{lead}");
    let runs = s.runs(ADMIN_KEY, &format!("binding={b}")).await;
    let run = &runs[0];
    assert_eq!(run["http"][0]["status"], 200, "{run}");
    assert_eq!(
        run["http"][0]["url"],
        remote.url("/v1/companies?domain=acme.io")
    );
    assert!(!run.to_string().contains(KEY), "{run}");
    let seen = remote.seen();
    assert!(seen[0]
        .headers
        .contains(&("authorization".into(), format!("Bearer {KEY}"))));

    // Without the secret the call fails by name inside the run; the lead is still created
    // and scored from what it has.
    let r = s.delete("/v1/secrets/ENRICH_KEY", ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let lead = s
        .record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": "Bob", "email": "bob@acme.io"}),
        )
        .await;
    assert_eq!(lead["custom"]["score"], 0, "{lead}");
    assert!(lead["custom"].get("company_size").is_none(), "{lead}");
    let runs = s.runs(ADMIN_KEY, &format!("binding={b}")).await;
    let run = runs.iter().find(|r| r["record"] == lead["id"]).unwrap();
    let log = logs(run);
    assert!(log.contains("secret_missing"), "{log}");
    assert!(log.contains("enrichment failed"), "{log}");
    assert_eq!(remote.seen().len(), 1, "nothing was sent without the key");
}

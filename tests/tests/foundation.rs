//! The foundation through the real router and a real socket: keys and roles, tenants,
//! pipelines, records, the journal, every error path, and persistence across a restart.

#![allow(clippy::unwrap_used)]

use reqwest::{Method, StatusCode};
use serde_json::Value;
use stagecraft_tests::{json, temp_dir, Server, ADMIN_KEY};

#[tokio::test]
async fn health_and_auth_errors_are_json() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let r = s.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);

    let r = s.call(Method::GET, "/v1/records", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "unauthorized");
    assert!(r.message().contains("Authorization"), "{}", r.message());

    let r = s.get("/v1/records", "wrong-key").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.message().contains("unknown"), "{}", r.message());

    let r = s
        .request(Method::GET, "/v1/records")
        .header("Authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    let r = Server::read(r).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.message().contains("Bearer"));

    let r = s.get("/v1/nothing-here", ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "not_found");

    let r = s
        .call(Method::PUT, "/v1/records", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.code(), "method_not_allowed");
}

#[tokio::test]
async fn new_tenant_has_default_pipelines() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let r = s.get("/v1/pipelines", ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::OK);
    let kinds: Vec<&str> = r.body["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["deal", "lead"]);
    let deals = s.get("/v1/pipelines/deals", ADMIN_KEY).await;
    let stages = deals.body["stages"].as_array().unwrap();
    assert_eq!(stages.first().unwrap()["semantic"], "open");
    assert_eq!(stages.last().unwrap()["semantic"], "lost");
}

#[tokio::test]
async fn record_crud_events_and_conflicts() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let agent = s.key(ADMIN_KEY, "agent").await;

    let company = s
        .record(&agent, json!({"kind": "company", "name": "Acme"}))
        .await;
    let lead = s
        .record(&agent, json!({"kind": "lead", "name": "Ada", "email": "ada@acme.io", "company": company["id"], "custom": {"source": "web"}}))
        .await;
    assert_eq!(lead["pipeline"], "leads");
    assert_eq!(lead["stage"], "new");
    assert_eq!(lead["version"], 1);
    let id = lead["id"].as_str().unwrap();

    let got = s.get(&format!("/v1/records/{id}"), &agent).await;
    assert_eq!(got.body, lead);

    // PATCH: core field, custom merge, owner change → assigned event.
    let r = s
        .patch(
            &format!("/v1/records/{id}"),
            &agent,
            json!({"phone": "+48 600", "owner": "bob", "custom": {"score": 7}, "version": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["version"], 2);
    assert_eq!(r.body["custom"], json!({"source": "web", "score": 7}));

    // Stale version → 409, nothing written.
    let r = s
        .patch(
            &format!("/v1/records/{id}"),
            &agent,
            json!({"phone": "x", "version": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "conflict");
    assert!(r.message().contains("version 2"), "{}", r.message());
    let r = s
        .request(Method::PATCH, &format!("/v1/records/{id}"))
        .bearer_auth(&agent)
        .header("If-Match", "\"1\"")
        .json(&json!({"phone": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(Server::read(r).await.status, StatusCode::CONFLICT);
    let r = s
        .request(Method::PATCH, &format!("/v1/records/{id}"))
        .bearer_auth(&agent)
        .header("If-Match", "2")
        .json(&json!({"custom": {"score": null}}))
        .send()
        .await
        .unwrap();
    let r = Server::read(r).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["custom"], json!({"source": "web"}));

    // Stage move validated against the pipeline.
    let r = s
        .post(
            &format!("/v1/records/{id}/stage"),
            &agent,
            json!({"stage": "won"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.message().contains("\"won\" is not in pipeline \"leads\""),
        "{}",
        r.message()
    );
    let r = s
        .post(
            &format!("/v1/records/{id}/stage"),
            &agent,
            json!({"stage": "qualified"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["stage"], "qualified");

    // The journal tells the story, in order.
    let ev = s.get(&format!("/v1/events?record={id}"), &agent).await;
    let kinds: Vec<&str> = ev.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec!["created", "assigned", "updated", "updated", "stage_changed"]
    );
    let events = ev.body["events"].as_array().unwrap();
    assert_eq!(events[1]["to"], "bob");
    assert_eq!(events[2]["fields"], json!(["phone", "score"]));
    assert_eq!(events[4]["from"], "new");
    assert_eq!(events[4]["to"], "qualified");
    assert_eq!(events[4]["snapshot"]["stage"], "qualified");

    // Delete, then it is gone, and the journal says so.
    let r = s.delete(&format!("/v1/records/{id}"), &agent).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        s.get(&format!("/v1/records/{id}"), &agent).await.status,
        StatusCode::NOT_FOUND
    );
    let ev = s.get(&format!("/v1/events?record={id}"), &agent).await;
    assert_eq!(
        ev.body["events"].as_array().unwrap().last().unwrap()["type"],
        "deleted"
    );
}

#[tokio::test]
async fn filters_and_cursor_pagination() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    for i in 0..7 {
        let owner = if i % 2 == 0 { "ann" } else { "ben" };
        s.record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": format!("L{i}"), "owner": owner}),
        )
        .await;
    }
    s.record(ADMIN_KEY, json!({"kind": "deal", "name": "D", "amount": 1200.5, "currency": "EUR", "stage": "proposal"})).await;

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let q = match &after {
            Some(a) => format!("/v1/records?kind=lead&owner=ann&limit=2&after={a}"),
            None => "/v1/records?kind=lead&owner=ann&limit=2".to_string(),
        };
        let r = s.get(&q, ADMIN_KEY).await;
        assert_eq!(r.status, StatusCode::OK);
        for rec in r.body["records"].as_array().unwrap() {
            assert_eq!(rec["owner"], "ann");
            seen.push(rec["name"].as_str().unwrap().to_string());
        }
        match r.body["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
        assert!(seen.len() <= 4, "pagination must end");
    }
    assert_eq!(seen, vec!["L0", "L2", "L4", "L6"]);

    let r = s
        .get("/v1/records?pipeline=deals&stage=proposal", ADMIN_KEY)
        .await;
    let recs = r.body["records"].as_array().unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["amount"], 1200.5);
    assert!(r.body["next"].is_null());

    let r = s.get("/v1/records?kind=unicorn", ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "invalid_query");
    let r = s.get("/v1/records?limit=0", ADMIN_KEY).await;
    assert_eq!(r.code(), "invalid_query");
    let r = s.get("/v1/records?colour=red", ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.message().contains("colour"), "{}", r.message());
}

#[tokio::test]
async fn records_search_by_name_or_exact_email_with_the_other_filters() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    for (name, email, owner) in [
        ("Ada Lovelace", "ada@analytical.example", "ann"),
        ("Grace Hopper", "grace@navy.example", "ben"),
        ("Adam Smith", "adam@economy.example", "ben"),
        ("Bob", "LOVELACE@other.example", "ann"),
    ] {
        s.record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": name, "email": email, "owner": owner}),
        )
        .await;
    }
    let names = |body: &Value| -> Vec<String> {
        body["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    // A name substring, case-insensitive; an email only when it is the whole address.
    let r = s.get("/v1/records?q=ADA", ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(names(&r.body), ["Ada Lovelace", "Adam Smith"]);
    let r = s.get("/v1/records?q=lovelace", ADMIN_KEY).await;
    assert_eq!(names(&r.body), ["Ada Lovelace"], "not a part of an email");
    let r = s.get("/v1/records?q=Grace%40Navy.example", ADMIN_KEY).await;
    assert_eq!(names(&r.body), ["Grace Hopper"], "the exact email");
    // With the other filters, and through the cursor.
    let r = s.get("/v1/records?q=ad&owner=ben", ADMIN_KEY).await;
    assert_eq!(names(&r.body), ["Adam Smith"]);
    let r = s.get("/v1/records?q=a&limit=1", ADMIN_KEY).await;
    assert_eq!(names(&r.body), ["Ada Lovelace"]);
    let next = r.body["next"].as_str().unwrap().to_string();
    let r = s
        .get(&format!("/v1/records?q=a&limit=1&after={next}"), ADMIN_KEY)
        .await;
    assert_eq!(names(&r.body), ["Grace Hopper"]);
    // No match is an empty page; an empty or huge query names the problem.
    let r = s.get("/v1/records?q=zzz", ADMIN_KEY).await;
    assert_eq!(names(&r.body), Vec::<String>::new());
    assert!(r.body["next"].is_null());
    for q in ["%20", &"x".repeat(201)] {
        let r = s.get(&format!("/v1/records?q={q}"), ADMIN_KEY).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.code(), "invalid_query");
        assert!(r.message().contains("q must be"), "{}", r.message());
    }
    // The OpenAPI document describes the parameter.
    let doc = s.call(Method::GET, "/openapi.json", None, None).await.body;
    let params = doc["paths"]["/v1/records"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let q = params
        .iter()
        .find(|p| p["name"] == "q")
        .expect("q documented");
    assert!(q["description"].as_str().unwrap().contains("email"), "{q}");
}

#[tokio::test]
async fn bad_bodies_name_the_problem_and_write_nothing() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;

    let r = s
        .request(Method::POST, "/v1/records")
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body("{\"kind\": ")
        .send()
        .await
        .unwrap();
    let r = Server::read(r).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "malformed_json");

    let r = s
        .request(Method::POST, "/v1/records")
        .bearer_auth(ADMIN_KEY)
        .body("{}")
        .send()
        .await
        .unwrap();
    let r = Server::read(r).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let r = s
        .post(
            "/v1/records",
            ADMIN_KEY,
            json!({"kind": "lead", "name": "x", "colour": "red"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "unknown_field");
    assert!(r.message().contains("colour"));

    let r = s
        .post(
            "/v1/records",
            ADMIN_KEY,
            json!({"kind": "dragon", "name": "x"}),
        )
        .await;
    assert_eq!(r.code(), "invalid_body");
    assert!(r.message().contains("dragon"), "{}", r.message());

    let cases = [
        (
            json!({"kind": "lead", "name": "x", "stage": "nope"}),
            "\"nope\" is not in pipeline",
        ),
        (
            json!({"kind": "lead", "name": "x", "pipeline": "deals"}),
            "is for deals, not leads",
        ),
        (
            json!({"kind": "contact", "name": "x", "stage": "new"}),
            "do not live in pipelines",
        ),
        (
            json!({"kind": "lead", "name": "x", "amount": 3}),
            "belongs to deals",
        ),
        (
            json!({"kind": "lead", "name": "x", "email": "not-an-email"}),
            "not an email",
        ),
        (json!({"kind": "lead", "name": "   "}), "and not blank"),
        (
            json!({"kind": "deal", "name": "x", "currency": "euro"}),
            "ISO 4217",
        ),
        (
            json!({"kind": "contact", "name": "x", "company": "rec_missing"}),
            "does not exist",
        ),
        (
            json!({"kind": "lead", "name": "x", "custom": {"owner": 1}}),
            "shadows a core field",
        ),
    ];
    for (body, want) in cases {
        let r = s.post("/v1/records", ADMIN_KEY, body.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            r.body
        );
        assert!(r.message().contains(want), "{body}: {}", r.message());
    }
    // A link of the wrong kind.
    let contact = s
        .record(ADMIN_KEY, json!({"kind": "contact", "name": "C"}))
        .await;
    let r = s
        .post(
            "/v1/records",
            ADMIN_KEY,
            json!({"kind": "deal", "name": "D", "company": contact["id"]}),
        )
        .await;
    assert!(
        r.message().contains("is a contact, not a company"),
        "{}",
        r.message()
    );

    // PATCH errors.
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "L"}))
        .await;
    let path = format!("/v1/records/{}", lead["id"].as_str().unwrap());
    let r = s.patch(&path, ADMIN_KEY, json!({"nickname": "x"})).await;
    assert_eq!(r.code(), "unknown_field");
    let r = s
        .patch(&path, ADMIN_KEY, json!({"stage": "qualified"}))
        .await;
    assert!(r.message().contains("/stage"), "{}", r.message());
    let r = s
        .patch(&path, ADMIN_KEY, json!({"name": "ok", "email": "bad"}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        s.get(&path, ADMIN_KEY).await.body["name"],
        "L",
        "nothing half-applied"
    );
    let r = s
        .request(Method::PATCH, &path)
        .bearer_auth(ADMIN_KEY)
        .header("If-Match", "abc")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(Server::read(r).await.code(), "invalid_header");

    // Too large.
    let big = "x".repeat(2 * 1024 * 1024);
    let r = s
        .post(
            "/v1/records",
            ADMIN_KEY,
            json!({"kind": "lead", "name": big}),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "body_too_large");

    let all = s.get("/v1/records", ADMIN_KEY).await;
    assert_eq!(
        all.body["records"].as_array().unwrap().len(),
        2,
        "only the two good records exist"
    );
    let r = s.get("/v1/records/rec_nope", ADMIN_KEY).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pipelines_validate_and_protect_occupied_stages() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let bad = [
        (
            json!({"name": "S", "kind": "deal", "stages": [{"id": "a", "name": "A", "semantic": "open"}]}),
            "won stage and a lost stage",
        ),
        (
            json!({"name": "S", "kind": "lead", "stages": []}),
            "at least one stage",
        ),
        (
            json!({"name": "S", "kind": "lead", "stages": [{"id": "a", "name": "A", "semantic": "won"}]}),
            "must be open",
        ),
        (
            json!({"name": "S", "kind": "lead", "stages": [{"id": "a", "name": "A", "semantic": "open"}, {"id": "a", "name": "B", "semantic": "open"}]}),
            "appears twice",
        ),
        (
            json!({"name": "S", "kind": "deal", "stages": [{"id": "a", "name": "A", "semantic": "open"}, {"id": "w", "name": "W", "semantic": "won"}, {"id": "b", "name": "B", "semantic": "open"}, {"id": "l", "name": "L", "semantic": "lost"}]}),
            "no open stage may follow",
        ),
    ];
    for (body, want) in bad {
        let r = s.post("/v1/pipelines", ADMIN_KEY, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(r.message().contains(want), "{}", r.message());
    }
    let r = s
        .post(
            "/v1/pipelines",
            ADMIN_KEY,
            json!({"name": "Support Desk", "kind": "lead", "stages": [
            {"id": "open", "name": "Open", "semantic": "open"},
            {"id": "waiting", "name": "Waiting", "semantic": "open"},
            {"id": "done", "name": "Done", "semantic": "won"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["id"], "support-desk");
    let dup = s.post("/v1/pipelines", ADMIN_KEY, json!({"id": "support-desk", "name": "X", "kind": "lead", "stages": [{"id": "a", "name": "A", "semantic": "open"}]})).await;
    assert_eq!(dup.status, StatusCode::CONFLICT);

    let rec = s
        .record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": "T", "pipeline": "support-desk", "stage": "waiting"}),
        )
        .await;
    // Dropping the occupied stage is refused; dropping an empty one works.
    let r = s.patch("/v1/pipelines/support-desk", ADMIN_KEY, json!({"stages": [
        {"id": "open", "name": "Open", "semantic": "open"}, {"id": "done", "name": "Done", "semantic": "won"}]})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        r.message().contains("\"waiting\" still holds 1 record"),
        "{}",
        r.message()
    );
    let r = s.patch("/v1/pipelines/support-desk", ADMIN_KEY, json!({"stages": [
        {"id": "open", "name": "Open", "semantic": "open"}, {"id": "waiting", "name": "Waiting", "semantic": "open"}]})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["version"], 2);
    // The record's creation read the pipeline when "done" still existed; the edit must show
    // at once (pipelines are kept decoded in memory until written).
    let id = rec["id"].as_str().unwrap();
    let r = s
        .post(
            &format!("/v1/records/{id}/stage"),
            ADMIN_KEY,
            json!({"stage": "done"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(r.message().contains("\"done\""), "{}", r.message());
    let r = s
        .patch(
            "/v1/pipelines/support-desk",
            ADMIN_KEY,
            json!({"name": "Desk", "version": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        s.delete("/v1/pipelines/support-desk", ADMIN_KEY)
            .await
            .status,
        StatusCode::CONFLICT
    );
    // Once the record moves out, the stage and then the pipeline can go.
    assert_eq!(
        s.delete(&format!("/v1/records/{id}"), ADMIN_KEY)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.delete("/v1/pipelines/support-desk", ADMIN_KEY)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.get("/v1/pipelines/support-desk", ADMIN_KEY).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn roles_and_tenant_isolation() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let agent = s.key(ADMIN_KEY, "agent").await;
    let dev = s.key(ADMIN_KEY, "developer").await;

    // Agents and developers cannot administer.
    for k in [&agent, &dev] {
        let r = s
            .post("/v1/keys", k, json!({"role": "admin", "name": "escalate"}))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(r.code(), "forbidden");
        let r = s.post("/v1/pipelines", k, json!({"name": "X", "kind": "lead", "stages": [{"id": "a", "name": "A", "semantic": "open"}]})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    // Developers read records but do not write them.
    let r = s
        .post("/v1/records", &dev, json!({"kind": "lead", "name": "x"}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.message().contains("agent or admin"), "{}", r.message());
    assert_eq!(s.get("/v1/records", &dev).await.status, StatusCode::OK);

    // Only an operator key creates tenants.
    let admin2 = s.key(ADMIN_KEY, "admin").await;
    let r = s
        .post(
            "/v1/tenants",
            &admin2,
            json!({"id": "globex", "name": "Globex"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = s
        .post(
            "/v1/tenants",
            ADMIN_KEY,
            json!({"id": "globex", "name": "Globex"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let other = r.body["admin_key"].as_str().unwrap().to_string();
    let r = s
        .post(
            "/v1/tenants",
            ADMIN_KEY,
            json!({"id": "globex", "name": "Again"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = s
        .post(
            "/v1/tenants",
            ADMIN_KEY,
            json!({"id": "bad/id", "name": "X"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Data never crosses tenants: foreign ids are 404.
    let mine = s
        .record(&agent, json!({"kind": "lead", "name": "Mine"}))
        .await;
    let id = mine["id"].as_str().unwrap();
    assert_eq!(
        s.get(&format!("/v1/records/{id}"), &other).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.patch(
            &format!("/v1/records/{id}"),
            &other,
            json!({"name": "pwned"})
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.delete(&format!("/v1/records/{id}"), &other).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.post(
            &format!("/v1/records/{id}/stage"),
            &other,
            json!({"stage": "qualified"})
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert!(s.get("/v1/records", &other).await.body["records"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(
        s.get(&format!("/v1/events?record={id}"), &other).await.body["events"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let r = s
        .post(
            "/v1/records",
            &other,
            json!({"kind": "contact", "name": "x", "company": id}),
        )
        .await;
    assert!(
        r.message().contains("does not exist"),
        "links cannot reach across tenants"
    );
    // The other tenant got its own default pipelines.
    assert_eq!(
        s.get("/v1/pipelines", &other).await.body["pipelines"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Revoked keys stop working.
    let keys = s.get("/v1/keys", ADMIN_KEY).await;
    let agent_id = keys.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "agent")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        keys.body["keys"][0].get("hash").is_none(),
        "hashes never leave the server"
    );
    assert_eq!(
        s.delete(&format!("/v1/keys/{agent_id}"), ADMIN_KEY)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.get("/v1/records", &agent).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn lead_conversion_is_one_change() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let lead = s
        .record(
            ADMIN_KEY,
            json!({"kind": "lead", "name": "Grace", "email": "g@navy.mil", "owner": "ann"}),
        )
        .await;
    let id = lead["id"].as_str().unwrap();
    let r = s
        .post(
            &format!("/v1/records/{id}/convert"),
            ADMIN_KEY,
            json!({"company": "Navy", "deal": "Compilers", "amount": 5000, "currency": "USD"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let recs = r.body["records"].as_array().unwrap();
    assert_eq!(recs[0]["stage"], "converted");
    let kinds: Vec<&str> = recs.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["lead", "company", "contact", "deal"]);
    let deal = &recs[3];
    assert_eq!(deal["contact"], recs[2]["id"]);
    assert_eq!(deal["company"], recs[1]["id"]);
    assert_eq!(deal["owner"], "ann");
    assert_eq!(recs[2]["email"], "g@navy.mil");
    let again = s
        .post(&format!("/v1/records/{id}/convert"), ADMIN_KEY, json!({}))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn data_survives_a_restart() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let agent = s.key(ADMIN_KEY, "agent").await;
    let lead = s
        .record(&agent, json!({"kind": "lead", "name": "Persisted"}))
        .await;
    let id = lead["id"].as_str().unwrap().to_string();
    s.post(
        &format!("/v1/records/{id}/stage"),
        &agent,
        json!({"stage": "contacted"}),
    )
    .await;
    let s = s.restart().await;
    let r = s.get(&format!("/v1/records/{id}"), &agent).await;
    assert_eq!(r.status, StatusCode::OK, "keys and records survive");
    assert_eq!(r.body["stage"], "contacted");
    assert_eq!(
        s.get(&format!("/v1/events?record={id}"), &agent).await.body["events"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // The stage counter survived too: the occupied stage cannot be dropped.
    let r = s
        .patch(
            "/v1/pipelines/leads",
            ADMIN_KEY,
            json!({"stages": [{"id": "new", "name": "New", "semantic": "open"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn concurrent_patches_never_lose_an_update() {
    let dir = temp_dir();
    let s = std::sync::Arc::new(Server::start(dir.path()).await);
    let lead = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Race"}))
        .await;
    let id = lead["id"].as_str().unwrap().to_string();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            s.patch(
                &format!("/v1/records/{id}"),
                ADMIN_KEY,
                json!({"version": 1, "custom": {"writer": i}}),
            )
            .await
            .status
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 1, "exactly one writer based on version 1 wins");
    assert_eq!(
        s.get(&format!("/v1/records/{id}"), ADMIN_KEY).await.body["version"],
        2
    );
}

#[tokio::test]
async fn bad_key_requests_are_refused_by_name() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let cases = [
        (
            json!({"role": "agent", "name": "  "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
        ),
        (
            json!({"role": "agent", "name": "k", "user": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "user",
        ),
        (
            json!({"role": "root", "name": "k"}),
            StatusCode::BAD_REQUEST,
            "root",
        ),
        (json!({"role": "agent"}), StatusCode::BAD_REQUEST, "name"),
    ];
    for (body, status, word) in cases {
        let r = s.post("/v1/keys", ADMIN_KEY, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {:?}", r.body);
        assert!(r.message().contains(word), "{body}: {}", r.message());
    }
    assert_eq!(
        s.get("/v1/keys", ADMIN_KEY).await.body["keys"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "only the bootstrap key"
    );
    assert_eq!(
        s.delete("/v1/keys/key_nope", ADMIN_KEY).await.status,
        StatusCode::NOT_FOUND
    );
}

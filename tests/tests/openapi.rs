//! The OpenAPI document is generated from the routes; this keeps it honest: every documented
//! operation exists on the real router, the served document is the generated one, every
//! request body has an example that fits its schema and that the real router accepts, and
//! the schemas refuse what the server refuses (so generated clients and fuzzers reach the
//! real logic instead of being turned away for shape).

#![allow(clippy::unwrap_used)]

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use stagecraft_tests::{temp_dir, Server, ADMIN_KEY};

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let r = s.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let generated = serde_json::to_value(stagecraft::http::openapi_document()).unwrap();
    assert_eq!(r.body, generated, "served document is the generated one");
    let paths = r.body["paths"].as_object().unwrap();
    assert!(paths.len() >= 8, "{:?}", paths.keys().collect::<Vec<_>>());
    let mut checked = 0;
    for (path, item) in paths {
        for method in ["get", "post", "patch", "delete", "put"] {
            if item.get(method).is_none() {
                continue;
            }
            let concrete = path
                .replace("{id}", "x")
                .replace("{name}", "x")
                .replace("{n}", "1");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let resp = s.call(m, &concrete, None, None).await;
            // Unauthenticated calls to a routed operation are refused by auth, not 404/405.
            assert_eq!(
                resp.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path}: {:?}",
                resp.body
            );
            checked += 1;
        }
    }
    assert!(checked >= 14, "checked {checked}");
    for schema in ["Record", "Pipeline", "Event", "ErrorBody"] {
        assert!(
            r.body["components"]["schemas"].get(schema).is_some(),
            "schema {schema}"
        );
    }
}

/// Where the document's schemas live for the validator.
const DOC: &str = "http://stagecraft.test/openapi.json";

/// A JSON Schema validator over the served document (OpenAPI 3.1 schemas are JSON Schema
/// 2020-12), with formats (`date-time`, …) asserted.
struct Validator {
    compiler: boon::Compiler,
    schemas: boon::Schemas,
    next: usize,
}

impl Validator {
    fn new(doc: &Value) -> Validator {
        let mut compiler = boon::Compiler::new();
        compiler.set_default_draft(boon::Draft::V2020_12);
        compiler.enable_format_assertions();
        compiler.add_resource(DOC, doc.clone()).unwrap();
        Validator {
            compiler,
            schemas: boon::Schemas::new(),
            next: 0,
        }
    }

    /// Validates `value` against `schema` (a schema from the document: its local `$ref`s point
    /// into the document).
    fn check(&mut self, schema: &Value, value: &Value) -> Result<(), String> {
        let mut schema = schema.clone();
        absolute_refs(&mut schema);
        self.next += 1;
        let loc = format!("http://stagecraft.test/schema-{}.json", self.next);
        self.compiler.add_resource(&loc, schema).unwrap();
        let index = self
            .compiler
            .compile(&loc, &mut self.schemas)
            .map_err(|e| format!("{e:#}"))?;
        self.schemas
            .validate(value, index)
            .map_err(|e| format!("{e}"))
    }
}

/// Points `#/components/...` references at the document.
fn absolute_refs(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                match x {
                    Value::String(r) if k == "$ref" && r.starts_with('#') => {
                        *r = format!("{DOC}{r}");
                    }
                    _ => absolute_refs(x),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(absolute_refs),
        _ => {}
    }
}

/// The example of a JSON request body: on the body itself, else on the schema it refers to.
fn example_of(doc: &Value, content: &Value) -> Option<Value> {
    if let Some(e) = content.get("example") {
        return Some(e.clone());
    }
    let name = content["schema"]["$ref"]
        .as_str()?
        .strip_prefix("#/components/schemas/")?;
    doc["components"]["schemas"][name].get("example").cloned()
}

#[tokio::test]
async fn every_request_body_has_an_example_that_validates_and_reaches_the_real_logic() {
    let dir = temp_dir();
    // With a secrets key, so `PUT /v1/secrets/{name}` reaches the vault.
    let mut config = stagecraft::config::Config::new(dir.path());
    config.secrets_key = Some(stagecraft::secrets::SecretsKey::from_hex(&"5a".repeat(32)).unwrap());
    let s = Server::start_with(config).await;
    let doc = s.call(Method::GET, "/openapi.json", None, None).await.body;

    // What the examples refer to: module lead-scoring version 1 and the default pipelines;
    // what the path parameters name: a binding, fresh leads, the `leads` pipeline.
    assert_eq!(s.upload_guest(ADMIN_KEY, "lead-scoring", "scorer").await, 1);
    let binding = s
        .bind(
            ADMIN_KEY,
            json!({"pipeline": "leads", "module": "lead-scoring", "version": 1,
                   "triggers": [{"on": "deleted"}]}),
        )
        .await;
    let mut leads = Vec::new();
    for i in 0..6 {
        let r = s
            .record(
                ADMIN_KEY,
                json!({"kind": "lead", "name": format!("Lead {i}")}),
            )
            .await;
        leads.push(r["id"].as_str().unwrap().to_string());
    }

    // A task for `/v1/tasks/{id}`, on a lead of its own.
    let spare = s
        .record(ADMIN_KEY, json!({"kind": "lead", "name": "Spare"}))
        .await;
    let task = s
        .post(
            &format!("/v1/records/{}/tasks", spare["id"].as_str().unwrap()),
            ADMIN_KEY,
            json!({"title": "Call"}),
        )
        .await;
    let task = task.body["id"].as_str().unwrap().to_string();

    let mut v = Validator::new(&doc);
    let mut sent = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(content) = op["requestBody"]["content"].get("application/json") else {
                continue;
            };
            let what = format!("{} {path}", method.to_uppercase());
            let example = example_of(&doc, content)
                .unwrap_or_else(|| panic!("{what}: the request body has no example"));
            if let Err(e) = v.check(&content["schema"], &example) {
                panic!("{what}: the example does not fit its own schema: {e}\n{example}");
            }
            let mut concrete = path.clone();
            if concrete.starts_with("/v1/records/{id}") {
                let lead = leads.pop().expect("a fresh lead for each record operation");
                concrete = concrete.replace("{id}", &lead);
            }
            let concrete = concrete
                .replace("/v1/pipelines/{id}", "/v1/pipelines/leads")
                .replace("/v1/bindings/{id}", &format!("/v1/bindings/{binding}"))
                .replace("/v1/secrets/{name}", "/v1/secrets/CLEARBIT_KEY")
                .replace("/v1/tasks/{id}", &format!("/v1/tasks/{task}"))
                .replace("{name}", "lead-scoring")
                .replace("{n}", "1");
            assert!(!concrete.contains('{'), "{what}: no value for {concrete}");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = s
                .call(m, &concrete, Some(ADMIN_KEY), Some(example.clone()))
                .await;
            // Accepted, or refused for what it refers to (an example id that does not exist
            // here), never for its shape.
            assert!(
                r.status.is_success() || r.status == StatusCode::NOT_FOUND,
                "{what}: the server refused the document's own example {example}: {} {:?}",
                r.status,
                r.body
            );
            sent.push((what, r.status.as_u16()));
        }
    }
    println!("{sent:?}");
    assert!(sent.len() >= 14, "{sent:?}");
    let accepted = sent.iter().filter(|(_, s)| *s < 300).count();
    assert!(accepted >= 12, "most examples commit: {sent:?}");
}

#[tokio::test]
async fn the_documents_constraints_are_the_servers() {
    let dir = temp_dir();
    let s = Server::start(dir.path()).await;
    let doc = s.call(Method::GET, "/openapi.json", None, None).await.body;
    let mut v = Validator::new(&doc);

    // Query parameters are documented as query parameters, with their ranges.
    let params = &doc["paths"]["/v1/records"]["get"]["parameters"];
    for p in params.as_array().unwrap() {
        assert_eq!(p["in"], "query", "{p}");
    }
    let limit = params
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], 500);

    // The slug pattern says what the slug rule says.
    let slug = json!({"type": "string", "pattern": stagecraft::model::schema::SLUG_PATTERN});
    for name in [
        "leads", "v2.mover", "a", "0", "a-b_c.d", ".", "..", "...", ".x", "-x", "_x", "a/b", "a b",
        "é", "",
    ]
    .into_iter()
    .map(String::from)
    .chain([("a".repeat(64)), ("a".repeat(65))])
    {
        assert_eq!(
            v.check(&slug, &json!(name)).is_ok(),
            stagecraft::model::id::is_valid_slug(&name),
            "{name:?}"
        );
    }

    // Bodies the schema refuses, the server refuses too (and the other way round).
    let schema = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    for (name, path, body) in [
        (
            "NewRecord",
            "/v1/records",
            json!({"kind": "lead", "name": ""}),
        ),
        (
            "NewRecord",
            "/v1/records",
            json!({"kind": "lead", "name": "x", "email": "nope"}),
        ),
        (
            "NewRecord",
            "/v1/records",
            json!({"kind": "deal", "name": "x", "currency": "usd"}),
        ),
        (
            "NewRecord",
            "/v1/records",
            json!({"kind": "deal", "name": "x", "amount": -1}),
        ),
        (
            "NewPipeline",
            "/v1/pipelines",
            json!({"name": "P", "kind": "lead", "stages": []}),
        ),
        (
            "NewPipeline",
            "/v1/pipelines",
            json!({"id": "-p", "name": "P", "kind": "lead",
            "stages": [{"id": "new", "name": "New", "semantic": "open"}]}),
        ),
        (
            "NewPipeline",
            "/v1/pipelines",
            json!({"name": "P", "kind": "lead",
            "stages": [{"id": "new", "name": " ", "semantic": "open"}]}),
        ),
        (
            "NewBinding",
            "/v1/bindings",
            json!({"pipeline": "leads", "module": "m", "version": 0,
            "triggers": [{"on": "created"}]}),
        ),
        (
            "NewBinding",
            "/v1/bindings",
            json!({"pipeline": "leads", "module": "m", "version": 1,
            "triggers": []}),
        ),
        (
            "NewBinding",
            "/v1/bindings",
            json!({"pipeline": "leads", "module": "m", "version": 1,
            "triggers": [{"on": "created", "delay_seconds": 40_000_000}]}),
        ),
        (
            "NewBinding",
            "/v1/bindings",
            json!({"pipeline": "leads", "module": "m", "version": 1,
            "triggers": [{"on": "updated", "fields": [".."]}]}),
        ),
        (
            "NewBinding",
            "/v1/bindings",
            json!({"pipeline": "leads", "module": "m", "version": 1,
            "triggers": [{"on": "created"}], "grants": {"fields": ["-x"]}}),
        ),
        ("NewKey", "/v1/keys", json!({"role": "agent", "name": ""})),
        (
            "NewTenant",
            "/v1/tenants",
            json!({"id": "..", "name": "Dots"}),
        ),
        ("Inbound", "/v1/events", json!({"name": ""})),
        ("Inbound", "/v1/events", json!({"name": "x".repeat(101)})),
        (
            "ChannelConfig",
            "/v1/channels",
            json!({"sms": {"url": "ftp://nope"}}),
        ),
        (
            "ChannelConfig",
            "/v1/channels",
            json!({"email": {"host": "", "port": 25,
            "tls": "none", "from": "a@b.c"}}),
        ),
        (
            "ChannelConfig",
            "/v1/channels",
            json!({"email": {"host": "smtp.example.com", "port": 25, "tls": "none",
            "from": "a@b.c", "password": "p".repeat(1025)}}),
        ),
        (
            "ChannelConfig",
            "/v1/channels",
            json!({"sms": {"url": format!("https://sms.example.com/{}", "a".repeat(2048))}}),
        ),
        (
            "ChannelConfig",
            "/v1/channels",
            json!({"webhook": {"allowed_hosts": vec!["hooks.example.com"; 101]}}),
        ),
    ] {
        assert!(
            v.check(&schema(name), &body).is_err(),
            "the {name} schema accepts {body}"
        );
        let m = if path == "/v1/channels" {
            Method::PUT
        } else {
            Method::POST
        };
        let r = s.call(m, path, Some(ADMIN_KEY), Some(body.clone())).await;
        assert!(
            r.status.is_client_error() && r.status != StatusCode::NOT_FOUND,
            "{path} accepted {body}: {} {:?}",
            r.status,
            r.body
        );
    }
}

/// The upload body is the component file, not JSON: binary. Every operation documents the
/// 503 it can answer, with `Retry-After`; the record writes (which run automation inline)
/// name `busy` as well as the store's refusals.
#[test]
fn the_upload_is_binary_and_every_operation_documents_its_503() {
    let doc = serde_json::to_value(stagecraft::http::openapi_document()).unwrap();
    let body = &doc["paths"]["/v1/modules/{name}/versions"]["post"]["requestBody"];
    let schema = &body["content"]["application/wasm"]["schema"];
    let schema = match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.strip_prefix("#/components/schemas/").unwrap()],
        None => schema,
    };
    assert_eq!(schema["type"], "string", "{body}");
    assert_eq!(schema["format"], "binary", "{body}");

    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let what = format!("{} {path}", method.to_uppercase());
            let answer = &op["responses"]["503"];
            assert!(answer.is_object(), "{what} does not list its 503");
            let description = answer["description"].as_str().unwrap();
            assert!(
                description.contains("storage_unavailable"),
                "{what}: {description}"
            );
            for status in ["429", "503"] {
                if let Some(answer) = op["responses"].get(status) {
                    assert!(
                        answer["headers"]["Retry-After"].is_object(),
                        "{what} {status}: {answer}"
                    );
                }
            }
            operations += 1;
        }
    }
    assert!(operations >= 30, "{operations}");
    for (path, method) in [
        ("/v1/records", "post"),
        ("/v1/records/{id}", "patch"),
        ("/v1/records/{id}", "delete"),
        ("/v1/records/{id}/stage", "post"),
        ("/v1/records/{id}/convert", "post"),
        ("/v1/events", "post"),
    ] {
        let description = doc["paths"][path][method]["responses"]["503"]["description"]
            .as_str()
            .unwrap();
        assert!(
            description.contains("`busy`"),
            "{method} {path}: {description}"
        );
    }
}

//! The OpenAPI document is generated from the routes; this keeps it honest: every documented
//! operation exists on the real router, and the served document is the generated one.

#![allow(clippy::unwrap_used)]

use reqwest::{Method, StatusCode};
use stagecraft_tests::{temp_dir, Server};

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

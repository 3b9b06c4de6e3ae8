//! The SDK's `MockHost` and the host both apply the field rules of `stagecraft-rules`, so a
//! plugin author's native tests behave like the server. This test holds them to it: the same
//! writes must be accepted or refused by both.

#![allow(clippy::unwrap_used)]

use serde_json::json;
use stagecraft::model::{Record, RecordKind};
use stagecraft_sdk::testing::{self, MockHost};
use stagecraft_sdk::Host;

fn host_record(kind: RecordKind) -> Record {
    let now = chrono::Utc::now();
    Record {
        id: "r1".into(),
        kind,
        name: "Name".into(),
        email: None,
        phone: None,
        amount: None,
        currency: None,
        owner: None,
        company: None,
        contact: None,
        pipeline: None,
        stage: None,
        custom: Default::default(),
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

fn sdk_record(kind: RecordKind) -> stagecraft_sdk::Record {
    match kind {
        RecordKind::Lead => testing::lead("r1", "Name", "p", "s"),
        RecordKind::Deal => testing::deal("r1", "Name", "p", "s", 0.0),
        RecordKind::Contact => testing::contact("r1", "Name", "x@y.io"),
        RecordKind::Company => testing::company("r1", "Name"),
    }
}

#[test]
fn host_and_mock_host_agree_on_field_writes() {
    let values = [
        json!(null),
        json!("text"),
        json!("ada@example.com"),
        json!("not-an-email"),
        json!("EUR"),
        json!("eur"),
        json!(""),
        json!("   "),
        json!(12.5),
        json!(-1),
        json!(true),
        json!({"a": 1}),
        json!("x".repeat(600)),
    ];
    let fields = [
        "name", "email", "phone", "amount", "currency", "owner", "company", "contact", "score",
        "id", "stage", "pipeline", "version", "bad/name", "custom",
    ];
    let mut checked = 0;
    for kind in [
        RecordKind::Lead,
        RecordKind::Deal,
        RecordKind::Contact,
        RecordKind::Company,
    ] {
        for field in fields {
            for value in &values {
                let host_ok = host_record(kind).set_field(field, value.clone()).is_ok();
                let mut mock = MockHost::new().with_record(sdk_record(kind));
                let mock_ok = mock.set_field("r1", field, &value.to_string()).is_ok();
                assert_eq!(
                    host_ok, mock_ok,
                    "{kind:?}.{field} = {value}: host {host_ok}, MockHost {mock_ok}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 4 * fields.len() * values.len());
}

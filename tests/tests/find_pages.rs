//! `records.find` inside a run answers whole or fails naming why, never short: the store's
//! pages end early at their budget of rows looked at (a stage given without its pipeline
//! is checked on the rows, 10,000 per page) or of bytes (4 MiB), and the run's source
//! goes on from the page's cursor. Real sled in a temp dir, through `StoreSource`, the
//! same source the sandbox reads through.

#![allow(clippy::unwrap_used)]

use chrono::Utc;
use serde_json::json;
use stagecraft::automation::source::StoreSource;
use stagecraft::model::{Record, RecordFilter};
use stagecraft::store::{Changeset, Durability, RecordWrite, Store};
use stagecraft_tests::temp_dir;

const TENANT: &str = "acme";

/// Lead `n` in `stage` of the lead pipeline (ids in creation order), with `pad` bytes of
/// custom text.
fn lead(n: usize, stage: &str, pad: usize) -> Record {
    let now = Utc::now();
    let id = stagecraft::model::id::id_at("rec", now.timestamp_millis(), n as u128 + 1);
    serde_json::from_value(json!({
        "id": id, "kind": "lead", "name": format!("Lead {n}"), "pipeline": "leads",
        "stage": stage, "custom": {"notes": "x".repeat(pad)},
        "version": 1, "created_at": now, "updated_at": now,
    }))
    .unwrap()
}

fn store_with(leads: impl Iterator<Item = Record>) -> (tempfile::TempDir, Store) {
    let dir = temp_dir();
    let store = Store::open(&dir.path().join("db")).unwrap();
    stagecraft::crm::tenants::create_tenant(&store, TENANT, "Acme").unwrap();
    let leads: Vec<Record> = leads.collect();
    for chunk in leads.chunks(1000) {
        let mut cs = Changeset::new(TENANT);
        cs.durability = Durability::Lazy;
        for r in chunk {
            cs.records.push(RecordWrite::Put {
                record: Box::new(r.clone()),
                expected: None,
            });
        }
        store.commit(&cs).unwrap();
    }
    (dir, store)
}

fn in_stage(stage: &str) -> RecordFilter {
    RecordFilter {
        stage: Some(stage.into()),
        ..Default::default()
    }
}

#[test]
fn a_find_past_a_pages_budget_of_rows_still_finds_every_match() {
    // 10,010 leads that do not match come first; the five that do come after them, past
    // the first page's 10,000 rows.
    let (_dir, store) = store_with(
        (0..10_010)
            .map(|n| lead(n, "new", 0))
            .chain((10_010..10_015).map(|n| lead(n, "qualified", 0))),
    );
    let source = StoreSource::for_tenant(&store, TENANT);
    let found = source.find(&in_stage("qualified"), 100).unwrap();
    assert_eq!(found.len(), 5, "every qualified lead");
    assert!(found
        .iter()
        .all(|r| r.stage.as_deref() == Some("qualified")));
    // A limit below what matches is still met exactly.
    assert_eq!(source.find(&in_stage("qualified"), 2).unwrap().len(), 2);
    assert!(source.find(&in_stage("converted"), 100).unwrap().is_empty());
}

#[test]
fn a_find_whose_records_pass_4_mib_fails_naming_why() {
    // Twenty leads of about 256 KiB each: more than a find may answer.
    let (_dir, store) = store_with((0..20).map(|n| lead(n, "qualified", 256 * 1024)));
    let source = StoreSource::for_tenant(&store, TENANT);
    let err = source.find(&in_stage("qualified"), 100).unwrap_err();
    assert!(
        err.to_string().contains("passed 4 MiB") && err.to_string().contains("ask for fewer"),
        "{err}"
    );
    // Asking for fewer answers.
    assert_eq!(source.find(&in_stage("qualified"), 5).unwrap().len(), 5);
}

//! The schema is migrated at start, once, and a database migrated by a newer binary is
//! refused with a message that says so.

mod common;

use stagecraft_store_pg::backend::OpenError;
use stagecraft_store_pg::{schema, PgBackend, PgOptions, SchemaError};

fn version(db: &common::TempDatabase) -> i64 {
    db.client()
        .query_one("SELECT version FROM stagecraft_schema", &[])
        .expect("the schema version is recorded")
        .get(0)
}

#[test]
fn start_migrates_once_and_keys_every_table_by_tenant_first() {
    let Some(db) = common::TempDatabase::create() else {
        return;
    };
    drop(PgBackend::open(db.config(), PgOptions::default()).expect("opens an empty database"));
    assert_eq!(version(&db), schema::VERSION);
    // A second host starting on the same database finds nothing to do.
    drop(PgBackend::open(db.config(), PgOptions::default()).expect("opens again"));
    assert_eq!(version(&db), schema::VERSION);

    // Citus can distribute every table by tenant: each primary key starts with it.
    let rows = db
        .client()
        .query(
            "SELECT c.relname, a.attname FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indrelid \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0] \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE i.indisprimary AND n.nspname = 'public' AND c.relname <> 'stagecraft_schema'",
            &[],
        )
        .expect("primary keys");
    // 18 of versions 1 and 2, tasks and comments of version 4, console_sessions and
    // replays of version 5, rollup_deltas of version 6.
    assert_eq!(rows.len(), 23, "every table has a primary key");
    for r in rows {
        let (table, first): (String, String) = (r.get(0), r.get(1));
        assert_eq!(first, "tenant", "{table}'s primary key starts with tenant");
    }
}

#[test]
fn a_schema_newer_than_the_binary_is_refused() {
    let Some(db) = common::TempDatabase::create() else {
        return;
    };
    drop(PgBackend::open(db.config(), PgOptions::default()).expect("opens"));
    db.client()
        .execute(
            "UPDATE stagecraft_schema SET version = $1",
            &[&(schema::VERSION + 1)],
        )
        .expect("a newer binary migrated it");
    let Err(e) = PgBackend::open(db.config(), PgOptions::default()) else {
        panic!("a newer schema was accepted");
    };
    assert!(
        matches!(
            e,
            OpenError::Schema(SchemaError::TooNew { found, known })
                if found == schema::VERSION + 1 && known == schema::VERSION
        ),
        "{e:?}"
    );
    let message = e.to_string();
    assert!(
        message.contains("newer than this binary knows"),
        "{message}"
    );
    // Nothing was changed by the refused start.
    assert_eq!(version(&db), schema::VERSION + 1);
}

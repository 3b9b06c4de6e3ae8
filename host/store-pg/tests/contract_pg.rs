//! The backend contract suite ([`stagecraft_store::contract`]) against PostgreSQL: every
//! property on a fresh database of its own (created with a random name on the server
//! `DATABASE_URL` or the libpq `PG*` variables name, dropped afterwards), opened as a host
//! opens it. Without a server the tests say so and pass, unless
//! `STAGECRAFT_REQUIRE_POSTGRES=1` (as `scripts/test` sets), when they fail.

mod common;

use std::sync::Arc;

use stagecraft_store::contract::Open;
use stagecraft_store::Backend;
use stagecraft_store_pg::{PgBackend, PgOptions};

fn on_postgres(property: fn(Open<'_>)) {
    let Some(db) = common::TempDatabase::create() else {
        return;
    };
    let open = || -> Arc<dyn Backend> {
        Arc::new(PgBackend::open(db.config(), PgOptions::default()).expect("PostgreSQL opens"))
    };
    property(&open);
}

stagecraft_store::backend_contract!(on_postgres);

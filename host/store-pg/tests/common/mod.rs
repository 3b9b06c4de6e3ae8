//! A throwaway database per test on the server the environment names (`DATABASE_URL`, or
//! the libpq `PG*` variables `pg_virtualenv` sets), dropped when the test ends.

#![allow(dead_code)]

use postgres::{Client, Config, NoTls};

/// Whether a missing server fails the test (`scripts/test` sets it) or skips it.
fn required() -> bool {
    std::env::var("STAGECRAFT_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// The server the environment names, or None (after saying so) when it names none.
pub fn server() -> Option<Config> {
    let url = std::env::var("DATABASE_URL").ok();
    match stagecraft_store_pg::connect::config(url.as_deref()).expect("a valid PostgreSQL address")
    {
        Some(c) => Some(c),
        None if required() => panic!(
            "STAGECRAFT_REQUIRE_POSTGRES=1 but PostgreSQL was not given: set DATABASE_URL or \
             PGHOST/PGUSER (scripts/test runs the tests inside pg_virtualenv)"
        ),
        None => {
            eprintln!(
                "PostgreSQL was not given (DATABASE_URL or PGHOST/PGUSER): skipping this test"
            );
            None
        }
    }
}

/// A database created for one test, dropped (with its connections) when this goes.
pub struct TempDatabase {
    admin: Config,
    name: String,
}

impl TempDatabase {
    pub fn create() -> Option<TempDatabase> {
        let admin = server()?;
        let name = format!("stagecraft_test_{:016x}", rand::random::<u64>());
        let mut c = admin
            .connect(NoTls)
            .expect("connects to the PostgreSQL server");
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("creates a test database");
        Some(TempDatabase { admin, name })
    }

    /// Where the test's database is.
    pub fn config(&self) -> Config {
        let mut c = self.admin.clone();
        c.dbname(&self.name);
        c
    }

    pub fn client(&self) -> Client {
        self.config()
            .connect(NoTls)
            .expect("connects to the test database")
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        if let Ok(mut c) = self.admin.connect(NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

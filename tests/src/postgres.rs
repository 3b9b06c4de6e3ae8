//! A throwaway PostgreSQL database for one test, on the server the environment names
//! (`DATABASE_URL`, or the libpq `PG*` variables `pg_virtualenv` sets), dropped when the
//! test ends. Without a server the test says so and passes, unless
//! `STAGECRAFT_REQUIRE_POSTGRES=1` (as `scripts/test` sets).

use postgres::{Config, NoTls};

pub struct TempDatabase {
    admin: Config,
    name: String,
}

impl TempDatabase {
    /// A fresh, empty database; None (after saying why) when no server was given.
    pub fn create() -> Option<TempDatabase> {
        let url = std::env::var("DATABASE_URL").ok();
        let admin = match stagecraft_store_pg::connect::config(url.as_deref())
            .expect("a valid PostgreSQL address")
        {
            Some(c) => c,
            None if std::env::var("STAGECRAFT_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => {
                panic!(
                    "STAGECRAFT_REQUIRE_POSTGRES=1 but PostgreSQL was not given: set \
                     DATABASE_URL or PGHOST/PGUSER (scripts/test runs inside pg_virtualenv)"
                )
            }
            None => {
                eprintln!("PostgreSQL was not given (DATABASE_URL or PGHOST/PGUSER): skipping");
                return None;
            }
        };
        let name = format!("stagecraft_test_{:016x}", rand::random::<u64>());
        off_runtime(|| {
            let mut c = admin.connect(NoTls).expect("connects to PostgreSQL");
            c.batch_execute(&format!("CREATE DATABASE {name}"))
                .expect("creates a test database");
        });
        Some(TempDatabase { admin, name })
    }

    /// `postgres://…` for `serve --database`.
    pub fn url(&self) -> String {
        let host = match self.admin.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".to_string(),
        };
        let port = self.admin.get_ports().first().copied().unwrap_or(5432);
        let user = self.admin.get_user().unwrap_or("postgres");
        let password = self
            .admin
            .get_password()
            .map(|p| format!(":{}", encode(&String::from_utf8_lossy(p))))
            .unwrap_or_default();
        format!(
            "postgres://{}{password}@{host}:{port}/{}",
            encode(user),
            self.name
        )
    }

    /// The one number `sql` selects in the test's database (to look at what hosts stored).
    pub fn count(&self, sql: &str) -> i64 {
        let mut c = self.admin.clone();
        c.dbname(&self.name);
        off_runtime(|| {
            let mut client = c.connect(NoTls).expect("connects to the test database");
            client.query_one(sql, &[]).expect(sql).get(0)
        })
    }
}

impl TempDatabase {
    /// The first column of every row `sql` selects, as text (`::text` in the query when it
    /// is not text already).
    pub fn strings(&self, sql: &str) -> Vec<String> {
        let mut c = self.admin.clone();
        c.dbname(&self.name);
        off_runtime(|| {
            let mut client = c.connect(NoTls).expect("connects to the test database");
            client
                .query(sql, &[])
                .expect(sql)
                .iter()
                .map(|r| r.get(0))
                .collect()
        })
    }
}

/// Percent-encodes everything but unreserved characters (for a URL's user and password).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        off_runtime(|| {
            if let Ok(mut c) = self.admin.connect(NoTls) {
                let _ = c.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ));
            }
        });
    }
}

/// The sync client runs a runtime of its own, which cannot start on a thread driving async
/// tests: every use goes to a thread of its own.
fn off_runtime<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(r) => r,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

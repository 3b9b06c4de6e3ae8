//! State that is no tenant data but must look the same from every host: console sign-ins
//! and replay results (migration 3). With one host on sled both live in its memory; with
//! many hosts a sign-in made through one host and a replay started on one are answered by
//! any host from here.
//!
//! A session row is keyed by the SHA-256 of its id (the cookie's value is never stored) and
//! holds the signing key's hash, never the key; expired rows go when sessions are created
//! (at most [`SWEEP`] at a time). Replays keep a tenant's newest [`KEEP_REPLAYS`].

use serde_json::Value;
use stagecraft_store::{Durability, Result};

use crate::blocking::off_runtime;
use crate::sql::db;
use crate::PgBackend;

/// Expired sessions removed per sign-in, at most.
pub const SWEEP: i64 = 100;
/// Replays kept per tenant (the oldest go first), as a host keeps in memory.
pub const KEEP_REPLAYS: i64 = 100;

/// A console sign-in as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSession {
    pub tenant: String,
    /// SHA-256 (hex) of the session id.
    pub hash: String,
    pub key_hash: String,
    pub csrf: String,
    pub expires_ms: i64,
    /// The message to show once on the next page (`{"error", "text"}`).
    pub flash: Option<Value>,
}

impl PgBackend {
    /// Stores a new session, sweeping a few expired ones.
    pub fn put_session(&self, s: &StoredSession, now_ms: i64) -> Result<()> {
        off_runtime(|| {
            self.transact(Durability::Durable, |tx| {
                tx.execute(
                    "DELETE FROM console_sessions WHERE (tenant, hash) IN ( \
                        SELECT tenant, hash FROM console_sessions WHERE expires_ms <= $1 LIMIT $2)",
                    &[&now_ms, &SWEEP],
                )?;
                tx.execute(
                    "INSERT INTO console_sessions (tenant, hash, key_hash, csrf, expires_ms, flash) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[&s.tenant, &s.hash, &s.key_hash, &s.csrf, &s.expires_ms, &s.flash],
                )?;
                Ok(())
            })
        })
    }

    /// The live session whose id hashes to `hash`.
    pub fn session(&self, hash: &str, now_ms: i64) -> Result<Option<StoredSession>> {
        off_runtime(|| {
            let mut c = self.conn()?;
            let row = c
                .query_opt(
                    "SELECT tenant, key_hash, csrf, expires_ms, flash FROM console_sessions \
                     WHERE hash = $1 AND expires_ms > $2",
                    &[&hash, &now_ms],
                )
                .map_err(db)?;
            Ok(row.map(|r| StoredSession {
                tenant: r.get(0),
                hash: hash.to_string(),
                key_hash: r.get(1),
                csrf: r.get(2),
                expires_ms: r.get(3),
                flash: r.get(4),
            }))
        })
    }

    pub fn remove_session(&self, hash: &str) -> Result<()> {
        off_runtime(|| {
            let mut c = self.conn()?;
            c.execute("DELETE FROM console_sessions WHERE hash = $1", &[&hash])
                .map_err(db)?;
            Ok(())
        })
    }

    /// Sets (or clears) the session's message for its next page.
    pub fn set_session_flash(&self, hash: &str, flash: Option<&Value>) -> Result<()> {
        off_runtime(|| {
            let mut c = self.conn()?;
            c.execute(
                "UPDATE console_sessions SET flash = $2 WHERE hash = $1",
                &[&hash, &flash],
            )
            .map_err(db)?;
            Ok(())
        })
    }

    /// The session's message, cleared in the same statement (shown once, whichever host
    /// renders the next page).
    pub fn take_session_flash(&self, hash: &str) -> Result<Option<Value>> {
        off_runtime(|| {
            let mut c = self.conn()?;
            let row = c
                .query_opt(
                    "UPDATE console_sessions n SET flash = NULL FROM console_sessions o \
                     WHERE n.tenant = o.tenant AND n.hash = o.hash AND n.hash = $1 \
                       AND o.flash IS NOT NULL \
                     RETURNING o.flash",
                    &[&hash],
                )
                .map_err(db)?;
            Ok(row.and_then(|r| r.get(0)))
        })
    }

    /// Stores a replay as it is now (again as it progresses); the tenant's oldest beyond
    /// [`KEEP_REPLAYS`] go.
    pub fn put_replay(&self, tenant: &str, id: &str, created_ms: i64, value: &Value) -> Result<()> {
        off_runtime(|| {
            self.transact(Durability::Lazy, |tx| {
                let n = tx.execute(
                    "INSERT INTO replays (tenant, id, created_ms, value) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (tenant, id) DO UPDATE SET value = EXCLUDED.value",
                    &[&tenant, &id, &created_ms, value],
                )?;
                if n > 0 {
                    tx.execute(
                        "DELETE FROM replays WHERE tenant = $1 AND id IN ( \
                            SELECT id FROM replays WHERE tenant = $1 \
                            ORDER BY created_ms DESC, id DESC OFFSET $2)",
                        &[&tenant, &KEEP_REPLAYS],
                    )?;
                }
                Ok(())
            })
        })
    }

    /// The replay `id` of `tenant`, as last stored by whichever host runs it.
    pub fn replay(&self, tenant: &str, id: &str) -> Result<Option<Value>> {
        off_runtime(|| {
            let mut c = self.conn()?;
            let row = c
                .query_opt(
                    "SELECT value FROM replays WHERE tenant = $1 AND id = $2",
                    &[&tenant, &id],
                )
                .map_err(db)?;
            Ok(row.map(|r| r.get(0)))
        })
    }
}

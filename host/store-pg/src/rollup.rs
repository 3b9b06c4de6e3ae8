//! Hourly rollups without a hot row. Every committed run (and every ended delivery) adds a
//! delta row of its own to `rollup_deltas`: an INSERT with a fresh sequence number, no read,
//! so concurrent commits of one tenant never write the same row and never lose a
//! serialization race over one (before version 6 every run read and rewrote its module's
//! and its binding's row for the hour, under SERIALIZABLE: every concurrent commit of a
//! tenant collided there and retried).
//!
//! A read sums the compacted row in `rollups` and the hour's deltas, in one statement (one
//! snapshot). Compaction folds deltas into `rollups` under READ COMMITTED, holding the
//! compacted row's lock: its `DELETE … RETURNING` decides which deltas it folds, so no delta
//! is folded twice or lost, and a reader sees each delta either as a delta or inside the
//! compacted row, never both. Deltas are compacted every [`COMPACT_EVERY`] commits a host
//! makes (the tenant's keys with at least [`COMPACT_AT`] deltas), by a read that finds more
//! than [`COMPACT_AT`], and by every retention pass (all of them).

use std::collections::BTreeMap;

use postgres::{Client, IsolationLevel, Transaction};
use stagecraft_model::stats::Rollup;

use crate::sql::{dec, enc, TxResult};

/// A host compacts its tenant's hot rollups after this many of its commits.
pub const COMPACT_EVERY: u64 = 256;
/// A key (scope, name, hour) with this many deltas is worth compacting.
pub const COMPACT_AT: i64 = 64;
/// Deltas one compaction folds at most (one short transaction; the rest wait for the next).
const COMPACT_BATCH: i64 = 5_000;
/// Keys one pass over a tenant compacts at most.
const KEYS_PER_PASS: i64 = 64;

/// One delta: what `change` makes of an empty rollup, added to the hour's rows of each
/// `(scope, name)` in `to`, in one statement.
pub fn add(
    tx: &mut Transaction<'_>,
    tenant: &str,
    to: &[(&str, &str)],
    hour: i64,
    change: impl FnOnce(&mut Rollup),
) -> TxResult<()> {
    let mut delta = Rollup::default();
    change(&mut delta);
    let value = enc("a rollup", &delta)?;
    let mut sql =
        String::from("INSERT INTO rollup_deltas (tenant, scope, name, hour, value) VALUES ");
    let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![&tenant, &hour, &value];
    for (i, (scope, name)) in to.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        let n = params.len();
        sql.push_str(&format!("($1, ${}, ${}, $2, $3)", n + 1, n + 2));
        params.push(scope);
        params.push(name);
    }
    if !to.is_empty() {
        tx.execute(&sql, &params)?;
    }
    Ok(())
}

/// What a read of rollups found.
pub struct Summed {
    /// Hour → its compacted row and deltas summed, oldest first (hours with nothing in
    /// them left out).
    pub hours: Vec<(i64, Rollup)>,
    /// Hour → how many deltas it had (not yet compacted).
    pub deltas: Vec<(i64, i64)>,
}

/// The rollups of `name` for hours in `[since, until)`, compacted rows and deltas summed.
pub fn read(
    c: &mut Client,
    tenant: &str,
    scope: &str,
    name: &str,
    since: i64,
    until: i64,
) -> TxResult<Summed> {
    let rows = c.query(
        "SELECT hour, value, FALSE FROM rollups WHERE tenant = $1 AND scope = $2 \
            AND name = $3 AND hour >= $4 AND hour < $5 \
         UNION ALL \
         SELECT hour, value, TRUE FROM rollup_deltas WHERE tenant = $1 AND scope = $2 \
            AND name = $3 AND hour >= $4 AND hour < $5",
        &[&tenant, &scope, &name, &since, &until],
    )?;
    let mut hours: BTreeMap<i64, Rollup> = BTreeMap::new();
    let mut deltas: BTreeMap<i64, i64> = BTreeMap::new();
    for r in rows {
        let hour: i64 = r.get(0);
        let part: Rollup = dec("a rollup", r.get::<_, &[u8]>(1))?;
        hours.entry(hour).or_default().merge(&part);
        if r.get::<_, bool>(2) {
            *deltas.entry(hour).or_default() += 1;
        }
    }
    let empty = Rollup::default();
    Ok(Summed {
        hours: hours.into_iter().filter(|(_, r)| *r != empty).collect(),
        deltas: deltas.into_iter().collect(),
    })
}

/// Folds up to [`COMPACT_BATCH`] of the hour's deltas into its compacted row; how many it
/// folded.
pub fn compact(c: &mut Client, tenant: &str, scope: &str, name: &str, hour: i64) -> TxResult<u64> {
    let mut tx = c
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()?;
    let key: [&(dyn postgres::types::ToSql + Sync); 4] = [&tenant, &scope, &name, &hour];
    // The compacted row exists, then is locked: compactions of one key take turns.
    tx.execute(
        "INSERT INTO rollups (tenant, scope, name, hour, value) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant, scope, name, hour) DO NOTHING",
        &[
            &tenant,
            &scope,
            &name,
            &hour,
            &enc("a rollup", &Rollup::default())?,
        ],
    )?;
    let row = tx.query_one(
        "SELECT value FROM rollups WHERE tenant = $1 AND scope = $2 AND name = $3 \
         AND hour = $4 FOR UPDATE",
        &key,
    )?;
    let mut total: Rollup = dec("a rollup", row.get::<_, &[u8]>(0))?;
    let folded = tx.query(
        "DELETE FROM rollup_deltas WHERE (tenant, scope, name, hour, seq) IN \
            (SELECT tenant, scope, name, hour, seq FROM rollup_deltas WHERE tenant = $1 \
             AND scope = $2 AND name = $3 AND hour = $4 ORDER BY seq LIMIT $5) \
         RETURNING value",
        &[&tenant, &scope, &name, &hour, &COMPACT_BATCH],
    )?;
    for r in &folded {
        total.merge(&dec("a rollup", r.get::<_, &[u8]>(0))?);
    }
    if !folded.is_empty() {
        tx.execute(
            "UPDATE rollups SET value = $5 WHERE tenant = $1 AND scope = $2 AND name = $3 \
             AND hour = $4",
            &[&tenant, &scope, &name, &hour, &enc("a rollup", &total)?],
        )?;
    }
    tx.commit()?;
    Ok(folded.len() as u64)
}

/// Compacts the tenant's keys that have at least `at_least` deltas (up to
/// [`KEYS_PER_PASS`] of them); how many deltas it folded.
pub fn compact_tenant(c: &mut Client, tenant: &str, at_least: i64) -> TxResult<u64> {
    let keys = c.query(
        "SELECT scope, name, hour FROM rollup_deltas WHERE tenant = $1 \
         GROUP BY scope, name, hour HAVING count(*) >= $2 LIMIT $3",
        &[&tenant, &at_least, &KEYS_PER_PASS],
    )?;
    let mut n = 0;
    for k in keys {
        let (scope, name, hour): (String, String, i64) = (k.get(0), k.get(1), k.get(2));
        n += compact(c, tenant, &scope, &name, hour)?;
    }
    Ok(n)
}

/// Passes of [`compact_all`] at most (writers keep adding deltas while it runs).
const ALL_PASSES: usize = 64;

/// Compacts every delta of the tenant (a retention pass): passes until one folds nothing,
/// at most [`ALL_PASSES`].
pub fn compact_all(c: &mut Client, tenant: &str) -> TxResult<u64> {
    let mut n = 0;
    for _ in 0..ALL_PASSES {
        let folded = compact_tenant(c, tenant, 1)?;
        if folded == 0 {
            break;
        }
        n += folded;
    }
    Ok(n)
}

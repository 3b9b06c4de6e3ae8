//! Retention: removes run history, journal snapshots and delivered messages older than a
//! cutoff, `batch` rows per statement (each its own short transaction, so writers never
//! wait behind a pass). What stays is what sled keeps: events without their snapshot,
//! rollups, idempotency keys, everything not yet delivered.

use stagecraft_model::Event;
use stagecraft_store::{Durability, PruneRequest, Pruned, Result};

use crate::sql::{dec, enc, ms};
use crate::PgBackend;

/// Runs `sql` (which removes at most `$2` rows of `$1`'s tenant before cutoff `$3`) until a
/// pass removes less than a batch; returns how many rows went.
fn drain(b: &PgBackend, sql: &str, tenant: &str, cutoff: i64, batch: i64) -> Result<u64> {
    let mut n = 0;
    loop {
        let removed = b.transact(Durability::Durable, |tx| {
            Ok(tx.execute(sql, &[&tenant, &batch, &cutoff])?)
        })?;
        n += removed;
        if removed < u64::try_from(batch).unwrap_or(u64::MAX) {
            return Ok(n);
        }
    }
}

/// Drops the record snapshots of `tenant`'s events before `cutoff`, `batch` events per
/// transaction: a stored event is its row, so each is read, its snapshot dropped, and
/// written back (the row's own layout, not SQL, says where the snapshot is).
fn drop_snapshots(b: &PgBackend, tenant: &str, cutoff: i64, batch: i64) -> Result<u64> {
    let mut n = 0;
    loop {
        let dropped = b.transact(Durability::Durable, |tx| {
            let rows = tx.query(
                "SELECT id, value FROM events WHERE tenant = $1 AND has_snapshot \
                 AND occurred_ms < $3 LIMIT $2 FOR UPDATE",
                &[&tenant, &batch, &cutoff],
            )?;
            for r in &rows {
                let mut e: Event = dec("an event", r.get::<_, &[u8]>(1))?;
                e.snapshot = None;
                tx.execute(
                    "UPDATE events SET has_snapshot = FALSE, value = $3 \
                     WHERE tenant = $1 AND id = $2",
                    &[&tenant, &r.get::<_, &str>(0), &enc("an event", &e)?],
                )?;
            }
            Ok(rows.len())
        })?;
        n += u64::try_from(dropped).unwrap_or(0);
        if i64::try_from(dropped).unwrap_or(i64::MAX) < batch {
            return Ok(n);
        }
    }
}

pub fn prune(b: &PgBackend, req: &PruneRequest) -> Result<Pruned> {
    let batch = i64::try_from(req.batch.max(1)).unwrap_or(i64::MAX);
    let cutoff = ms(req.cutoff);
    let tenants: Vec<String> = {
        let mut c = b.conn()?;
        c.query("SELECT tenant FROM tenants ORDER BY tenant", &[])
            .map_err(crate::sql::db)?
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let mut out = Pruned::default();
    for t in &tenants {
        // Every rollup delta folded into its hour's row (see `crate::rollup`).
        let mut c = b.conn()?;
        crate::rollup::compact_all(&mut c, t).map_err(crate::sql::fail_into)?;
        drop(c);
        out.runs += drain(
            b,
            "DELETE FROM runs WHERE (tenant, id) IN (SELECT tenant, id FROM runs \
             WHERE tenant = $1 AND started_ms < $3 LIMIT $2)",
            t,
            cutoff,
            batch,
        )?;
        out.snapshots += drop_snapshots(b, t, cutoff, batch)?;
        out.messages += drain(
            b,
            "DELETE FROM messages WHERE (tenant, id) IN (SELECT tenant, id FROM messages \
             WHERE tenant = $1 AND status = 'sent' AND sent_ms < $3 LIMIT $2)",
            t,
            cutoff,
            batch,
        )?;
    }
    Ok(out)
}

//! A changeset inside its transaction: record writes as conditional statements (an insert
//! that does nothing when the id is taken, an update `WHERE version = $expected`), the
//! journal, runs inserted once by their (event, binding) id, messages once per idempotency
//! key, timers (born cancelled when their record already left their stage, counted against
//! the follow-up caps), jobs — then the ops ([`crate::ops`]), all or nothing.

use postgres::Transaction;
use stagecraft_model::stats::{hour_of, Rollup};
use stagecraft_model::{Event, MessageStatus, OutboxMessage, Record, RunRecord, Timer, TimerKind};
use stagecraft_store::{Changeset, Committed, RecordWrite, StoreError};

use crate::sql::{big, channel_name, enc, kind_name, ms, status_name, TxResult};

pub fn commit(tx: &mut Transaction<'_>, cs: &Changeset) -> TxResult<Committed> {
    let tenant = cs.tenant.as_str();
    for w in &cs.records {
        match w {
            RecordWrite::Put { record, expected } => put_record(tx, tenant, record, *expected)?,
            RecordWrite::Delete { id, expected } => delete_record(tx, tenant, id, *expected)?,
        }
    }
    for e in &cs.events {
        insert_event(tx, tenant, e)?;
    }
    for r in &cs.runs {
        insert_run(tx, tenant, r)?;
    }
    for m in &cs.messages {
        insert_message(tx, tenant, m)?;
    }
    for t in &cs.timers {
        insert_timer(tx, tenant, t, cs)?;
    }
    for j in &cs.jobs {
        tx.execute(
            "INSERT INTO jobs (tenant, id, value) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant, id) DO UPDATE SET value = EXCLUDED.value",
            &[&tenant, &j.id, &enc("a job", j)?],
        )?;
    }
    let mut ops = Vec::with_capacity(cs.ops.len());
    for op in &cs.ops {
        ops.push(crate::ops::apply(tx, tenant, op)?);
    }
    Ok(Committed { ops })
}

fn record_columns(r: &Record) -> (&'static str, Option<String>) {
    (kind_name(r.kind), r.email.clone())
}

fn put_record(
    tx: &mut Transaction<'_>,
    tenant: &str,
    r: &Record,
    expected: Option<u64>,
) -> TxResult<()> {
    let (kind, email) = record_columns(r);
    let value = enc("a record", r)?;
    let what = || format!("record {:?}", r.id);
    match expected {
        None => {
            let n = tx.execute(
                "INSERT INTO records (tenant, id, version, kind, pipeline, stage, owner, name, email, value) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (tenant, id) DO NOTHING",
                &[&tenant, &r.id, &big(r.version), &kind, &r.pipeline, &r.stage, &r.owner, &r.name, &email, &value],
            )?;
            if n == 0 {
                return Err(StoreError::AlreadyExists(what()).into());
            }
        }
        Some(v) => {
            // The old row (`o`) comes back beside the new one: its stage says whether the
            // record's timers must be cancelled.
            let old = tx.query_opt(
                "UPDATE records r SET version = $3, kind = $4, pipeline = $5, stage = $6, \
                    owner = $7, name = $8, email = $9, value = $10 \
                 FROM records o WHERE o.tenant = r.tenant AND o.id = r.id \
                    AND r.tenant = $1 AND r.id = $2 AND r.version = $11 \
                 RETURNING o.stage",
                &[
                    &tenant,
                    &r.id,
                    &big(r.version),
                    &kind,
                    &r.pipeline,
                    &r.stage,
                    &r.owner,
                    &r.name,
                    &email,
                    &value,
                    &big(v),
                ],
            )?;
            match old {
                Some(row) => {
                    let was: Option<String> = row.get(0);
                    if was != r.stage {
                        cancel_timers(tx, tenant, &r.id, r.stage.as_deref())?;
                    }
                }
                None => return Err(missed(tx, tenant, &r.id, v)?.into()),
            }
        }
    }
    Ok(())
}

fn delete_record(tx: &mut Transaction<'_>, tenant: &str, id: &str, expected: u64) -> TxResult<()> {
    let n = tx.execute(
        "DELETE FROM records WHERE tenant = $1 AND id = $2 AND version = $3",
        &[&tenant, &id, &big(expected)],
    )?;
    if n == 0 {
        return Err(missed(tx, tenant, id, expected)?.into());
    }
    cancel_timers(tx, tenant, id, None)?;
    Ok(())
}

/// Why a conditional write on record `id` at version `expected` matched nothing.
fn missed(tx: &mut Transaction<'_>, tenant: &str, id: &str, expected: u64) -> TxResult<StoreError> {
    let found = tx.query_opt(
        "SELECT version FROM records WHERE tenant = $1 AND id = $2",
        &[&tenant, &id],
    )?;
    Ok(match found {
        None => StoreError::NotFound(format!("record {id:?}")),
        Some(row) => StoreError::VersionConflict {
            what: format!("record {id:?}"),
            expected,
            found: u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
        },
    })
}

/// Drops the record's timers tied to a stage other than `now_in` (all of them when None).
fn cancel_timers(
    tx: &mut Transaction<'_>,
    tenant: &str,
    record: &str,
    now_in: Option<&str>,
) -> TxResult<()> {
    match now_in {
        None => tx.execute(
            "DELETE FROM timers WHERE tenant = $1 AND record = $2",
            &[&tenant, &record],
        )?,
        Some(stage) => tx.execute(
            "DELETE FROM timers WHERE tenant = $1 AND record = $2 \
             AND stage IS NOT NULL AND stage <> $3",
            &[&tenant, &record, &stage],
        )?,
    };
    Ok(())
}

pub fn insert_event(tx: &mut Transaction<'_>, tenant: &str, e: &Event) -> TxResult<()> {
    tx.execute(
        "INSERT INTO events (tenant, id, record, occurred_ms, has_snapshot, kind, value) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant, id) DO UPDATE \
         SET record = EXCLUDED.record, occurred_ms = EXCLUDED.occurred_ms, \
             has_snapshot = EXCLUDED.has_snapshot, kind = EXCLUDED.kind, value = EXCLUDED.value",
        &[
            &tenant,
            &e.id,
            &e.record,
            &ms(e.occurred_at),
            &e.snapshot.is_some(),
            &e.kind.name(),
            &enc("an event", e)?,
        ],
    )?;
    Ok(())
}

/// Inserts a run once: its id is its (event, binding) id, so the primary key is the
/// exactly-once rule. Its rollups move in the same transaction.
fn insert_run(tx: &mut Transaction<'_>, tenant: &str, r: &RunRecord) -> TxResult<()> {
    let value = enc("a run", r)?;
    let outcome = r.outcome.name();
    let n = tx.execute(
        "INSERT INTO runs (tenant, id, binding, module, record, outcome, started_ms, event, \
            event_kind, value) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (tenant, id) DO NOTHING",
        &[
            &tenant,
            &r.id,
            &r.binding,
            &r.module,
            &r.record,
            &outcome,
            &ms(r.started_at),
            &r.event,
            &r.event_kind,
            &value,
        ],
    )?;
    if n == 0 {
        return Err(StoreError::AlreadyDone(r.id.clone()).into());
    }
    let hour = hour_of(r.started_at);
    crate::rollup::add(
        tx,
        tenant,
        &[("m", &r.module), ("b", &r.binding)],
        hour,
        |x| x.add(r),
    )?;
    Ok(())
}

/// Adds to one hourly rollup: a delta row of its own, no read (see [`crate::rollup`]).
pub fn roll(
    tx: &mut Transaction<'_>,
    tenant: &str,
    scope: &str,
    who: &str,
    hour: i64,
    change: impl FnOnce(&mut Rollup),
) -> TxResult<()> {
    crate::rollup::add(tx, tenant, &[(scope, who)], hour, change)
}

/// Queues a message unless its idempotency key was used (the key's primary key decides).
fn insert_message(tx: &mut Transaction<'_>, tenant: &str, m: &OutboxMessage) -> TxResult<()> {
    if let Some(k) = &m.idempotency_key {
        let fresh = tx.execute(
            "INSERT INTO idempotency_keys (tenant, key, message) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant, key) DO NOTHING",
            &[&tenant, k, &m.id],
        )?;
        if fresh == 0 {
            return Ok(());
        }
    }
    let due = m.next_attempt_at.unwrap_or(m.created_at);
    store_message(tx, tenant, m, Some(ms(due)))
}

/// Writes a message with its indexed columns; `due_ms` is when it is next looked at (its
/// next attempt while queued, its lease's end while sending, None otherwise).
pub fn store_message(
    tx: &mut Transaction<'_>,
    tenant: &str,
    m: &OutboxMessage,
    due_ms: Option<i64>,
) -> TxResult<()> {
    let sent_ms =
        (m.status == MessageStatus::Sent).then(|| ms(m.sent_at.unwrap_or_else(chrono::Utc::now)));
    tx.execute(
        "INSERT INTO messages (tenant, id, status, channel, record, run, due_ms, sent_ms, value) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant, id) DO UPDATE \
         SET status = EXCLUDED.status, channel = EXCLUDED.channel, record = EXCLUDED.record, \
             run = EXCLUDED.run, due_ms = EXCLUDED.due_ms, sent_ms = EXCLUDED.sent_ms, \
             value = EXCLUDED.value",
        &[
            &tenant,
            &m.id,
            &status_name(m.status),
            &channel_name(m.channel),
            &m.record,
            &m.run,
            &due_ms,
            &sent_ms,
            &enc("a message", m)?,
        ],
    )?;
    Ok(())
}

fn insert_timer(tx: &mut Transaction<'_>, tenant: &str, t: &Timer, cs: &Changeset) -> TxResult<()> {
    // A timer tied to a stage its record has already left in this same change (or a record
    // this change deleted) is born cancelled.
    if let Some(stage) = &t.stage {
        let now_in = tx.query_opt(
            "SELECT stage FROM records WHERE tenant = $1 AND id = $2",
            &[&tenant, &t.record],
        )?;
        let now_in: Option<String> = now_in.and_then(|r| r.get(0));
        if now_in.as_deref() != Some(stage.as_str()) {
            return Ok(());
        }
    }
    let follow_up = matches!(t.kind, TimerKind::FollowUp { .. });
    tx.execute(
        "INSERT INTO timers (tenant, id, due_ms, record, binding, stage, follow_up, value) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant, id) DO UPDATE \
         SET due_ms = EXCLUDED.due_ms, record = EXCLUDED.record, binding = EXCLUDED.binding, \
             stage = EXCLUDED.stage, follow_up = EXCLUDED.follow_up, value = EXCLUDED.value, \
             holder = NULL, held_until_ms = NULL",
        &[
            &tenant,
            &t.id,
            &ms(t.due),
            &t.record,
            &t.binding,
            &t.stage,
            &follow_up,
            &enc("a timer", t)?,
        ],
    )?;
    if let (true, Some(caps)) = (follow_up, cs.follow_up_caps) {
        let (pair, all) = follow_ups(tx, tenant, &t.binding, &t.record)?;
        if let Some(message) = caps.exceeded(&t.binding, &t.record, pair, all) {
            return Err(StoreError::Stale(message).into());
        }
    }
    Ok(())
}

/// Follow-ups pending for `binding` on `record`, and in the tenant.
pub fn follow_ups<C: postgres::GenericClient>(
    c: &mut C,
    tenant: &str,
    binding: &str,
    record: &str,
) -> TxResult<(i64, i64)> {
    let row = c.query_one(
        "SELECT count(*) FILTER (WHERE binding = $2 AND record = $3), count(*) \
         FROM timers WHERE tenant = $1 AND follow_up",
        &[&tenant, &binding, &record],
    )?;
    Ok((row.get(0), row.get(1)))
}

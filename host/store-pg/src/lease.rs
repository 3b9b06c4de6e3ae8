//! Leases on due work, shared by every host. Jobs and timers carry their lease in two
//! columns (`holder`, `held_until_ms`); taking them is one `UPDATE … FROM (SELECT … FOR
//! UPDATE SKIP LOCKED)`, so two hosts racing never take the same row, a holder's own live
//! lease comes back to it renewed, and an expired lease is anyone's. A message's lease is
//! its `sending` status, with its expiry in `due_ms`: the due index shows it again once the
//! lease runs out, so a host that died mid-attempt leaves it to another host (one extra
//! delivery at most, as documented). Nothing needs recovering at start.

use chrono::{DateTime, Utc};
use postgres::Transaction;
use stagecraft_model::{Job, MessageStatus, OutboxMessage, Timer};
use stagecraft_store::{DueTimer, LeaseRequest, Leased, Queue, QueuedJob};

use crate::sql::{dec, enc, ms, status_name, TxResult};

/// A due-index entry's key: `{due_ms:016}/{tenant}/{id}`, in due order.
pub fn due_key(at_ms: i64, tenant: &str, id: &str) -> String {
    format!("{at_ms:016}/{tenant}/{id}")
}

/// (due_ms, tenant, id) of a [`due_key`]; an unreadable key is due at 0 and matches nothing.
pub fn split_due(key: &str) -> (i64, String, String) {
    let mut parts = key.splitn(2, '/');
    let at = parts.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let rest = parts.next().unwrap_or_default();
    let (tenant, id) = rest.rsplit_once('/').unwrap_or((rest, ""));
    (at, tenant.to_string(), id.to_string())
}

pub fn due_ms_of(key: &str) -> i64 {
    split_due(key).0
}

/// A queued job as stored; one that cannot be decoded comes back as the reason, so the
/// worker can record it and move on.
pub fn queued_job(tenant: &str, id: String, value: &[u8]) -> QueuedJob {
    QueuedJob {
        key: format!("{tenant}/{id}"),
        tenant: tenant.to_string(),
        job: dec::<Job>("a job", value).map_err(|e| e.to_string()),
        id,
    }
}

pub fn lease(tx: &mut Transaction<'_>, req: &LeaseRequest) -> TxResult<Vec<Leased>> {
    let ttl = chrono::Duration::from_std(req.ttl).unwrap_or(chrono::Duration::MAX);
    let until = req
        .now
        .checked_add_signed(ttl)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let (now, until) = (ms(req.now), ms(until));
    let limit = i64::try_from(req.limit).unwrap_or(i64::MAX);
    match &req.queue {
        Queue::Jobs { tenant } => {
            let rows = tx.query(
                "UPDATE jobs j SET holder = $2, held_until_ms = $4 FROM ( \
                    SELECT tenant, id FROM jobs WHERE tenant = $1 \
                    AND (holder IS NULL OR holder = $2 OR held_until_ms <= $3) \
                    ORDER BY id LIMIT $5 FOR UPDATE SKIP LOCKED) due \
                 WHERE j.tenant = due.tenant AND j.id = due.id \
                 RETURNING j.id, j.value",
                &[tenant, &req.holder, &now, &until, &limit],
            )?;
            let mut jobs: Vec<QueuedJob> = rows
                .iter()
                .map(|r| queued_job(tenant, r.get(0), r.get(1)))
                .collect();
            jobs.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(jobs.into_iter().map(Leased::Job).collect())
        }
        Queue::Timers => {
            let rows = tx.query(
                "UPDATE timers t SET holder = $1, held_until_ms = $3 FROM ( \
                    SELECT tenant, id FROM timers WHERE due_ms <= $2 \
                    AND (holder IS NULL OR holder = $1 OR held_until_ms <= $2) \
                    ORDER BY due_ms, tenant, id LIMIT $4 FOR UPDATE SKIP LOCKED) due \
                 WHERE t.tenant = due.tenant AND t.id = due.id \
                 RETURNING t.due_ms, t.tenant, t.id, t.value",
                &[&req.holder, &now, &until, &limit],
            )?;
            let mut timers = Vec::with_capacity(rows.len());
            for r in rows {
                let (due, tenant, id): (i64, String, String) = (r.get(0), r.get(1), r.get(2));
                let timer: Timer = dec("a timer", r.get::<_, &[u8]>(3))?;
                timers.push((
                    due,
                    DueTimer {
                        key: format!("{tenant}/{id}"),
                        tenant,
                        timer,
                    },
                ));
            }
            timers.sort_by(|a, b| {
                (a.0, &a.1.tenant, &a.1.timer.id).cmp(&(b.0, &b.1.tenant, &b.1.timer.id))
            });
            Ok(timers.into_iter().map(|(_, t)| Leased::Timer(t)).collect())
        }
        Queue::Message(due) => {
            // Taken only while it still sits where the due entry saw it: a second claimer
            // (or a stale entry) matches nothing once the first claim moved it.
            let (at, _, _) = split_due(&due.key);
            let row = tx.query_opt(
                "SELECT value FROM messages WHERE tenant = $1 AND id = $2 \
                 AND status IN ('queued', 'sending') AND due_ms = $3 FOR UPDATE SKIP LOCKED",
                &[&due.tenant, &due.id, &at],
            )?;
            let Some(row) = row else {
                return Ok(Vec::new());
            };
            let mut m: OutboxMessage = dec("a message", row.get::<_, &[u8]>(0))?;
            m.status = MessageStatus::Sending;
            tx.execute(
                "UPDATE messages SET status = $3, due_ms = $4, value = $5 \
                 WHERE tenant = $1 AND id = $2",
                &[
                    &due.tenant,
                    &due.id,
                    &status_name(m.status),
                    &until,
                    &enc("a message", &m)?,
                ],
            )?;
            Ok(vec![Leased::Message(m)])
        }
    }
}

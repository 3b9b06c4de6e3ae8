//! Run rollups and the per-binding run index, both maintained in the transaction that commits
//! the run (so stats never disagree with the history they summarise), and their reads.

use chrono::{DateTime, Utc};

use super::codec::{Decode, Marker, RunOwner};
use super::tx::Tx;
use super::{family, SledBackend};
use crate::query::Scope;
use crate::Result;
use stagecraft_model::stats::{hour_of, Rollup};
use stagecraft_model::{MessageStatus, OutboxMessage, RunRecord};

fn tag(scope: Scope) -> &'static str {
    match scope {
        Scope::Module => "m",
        Scope::Binding => "b",
    }
}

/// Indexes and counts one run being committed.
pub(super) fn add_run(tx: &Tx<'_>, tenant: &str, run: &RunRecord) -> Result<()> {
    let ms = run.started_at.timestamp_millis();
    tx.put(
        &family::binding_run(tenant, &run.binding, ms, &run.id),
        &Marker,
    )?;
    let hour = hour_of(run.started_at);
    for (scope, name) in [(Scope::Module, &run.module), (Scope::Binding, &run.binding)] {
        let key = family::rollup(tenant, tag(scope), name, hour);
        let mut r: Rollup = tx.get(&key)?.unwrap_or_default();
        r.add(run);
        tx.put(&key, &r)?;
    }
    Ok(())
}

/// Counts a delivery that just ended (`m` is `sent` or `dead`) in the rollups of the module
/// and binding whose run queued it, in the hour it ended, in the transaction that records
/// it. A message whose run is past retention is not counted.
pub(super) fn add_delivery(tx: &Tx<'_>, tenant: &str, m: &OutboxMessage) -> Result<()> {
    let sent = match m.status {
        MessageStatus::Sent => true,
        MessageStatus::Dead => false,
        MessageStatus::Queued | MessageStatus::Sending => return Ok(()),
    };
    let Some(owner) = tx.get::<RunOwner>(&family::run(tenant, &m.run))? else {
        return Ok(());
    };
    let at = m
        .attempts
        .last()
        .map(|a| a.at)
        .or(m.sent_at)
        .unwrap_or_else(Utc::now);
    let hour = hour_of(at);
    for (scope, name) in [
        (Scope::Module, &owner.module),
        (Scope::Binding, &owner.binding),
    ] {
        let key = family::rollup(tenant, tag(scope), name, hour);
        let mut r: Rollup = tx.get(&key)?.unwrap_or_default();
        r.add_delivery(sent);
        tx.put(&key, &r)?;
    }
    Ok(())
}

impl SledBackend {
    /// The rollups of `name` for hours in `[since_hour, until_hour)`, as (hour, rollup).
    pub(super) fn rollups(
        &self,
        tenant: &str,
        scope: Scope,
        name: &str,
        since_hour: i64,
        until_hour: i64,
    ) -> Result<Vec<(i64, Rollup)>> {
        let start = family::rollup(tenant, tag(scope), name, since_hour);
        let end = family::rollup(tenant, tag(scope), name, until_hour);
        let mut out = Vec::new();
        for item in self.data.range(start.into_bytes()..end.into_bytes()) {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let hour = family::id_of(&key).parse::<i64>().unwrap_or_default();
            out.push((hour, Decode::decode(&key, &v)?));
        }
        Ok(out)
    }

    /// Ids of `binding`'s runs that started in `[since, until)`, oldest first; with `last`,
    /// only the newest `last` of them. At most `cap` ids (more means the window is too big).
    pub(super) fn binding_runs(
        &self,
        tenant: &str,
        binding: &str,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        last: Option<usize>,
        cap: usize,
    ) -> Result<Vec<(i64, String)>> {
        let prefix = family::binding_runs(tenant, binding);
        let start = match since {
            Some(t) => format!("{prefix}{:016}/", t.timestamp_millis().max(0)),
            None => prefix.clone(),
        };
        let end = match until {
            Some(t) => format!("{prefix}{:016}/", t.timestamp_millis().max(0)),
            None => format!("{prefix}\u{ff}"),
        };
        let range = self.data.range(start.into_bytes()..end.into_bytes());
        let parse = |k: &[u8]| {
            let key = String::from_utf8_lossy(k).into_owned();
            let mut parts = key.rsplit('/');
            let id = parts.next().unwrap_or_default().to_string();
            let ms = parts
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or_default();
            (ms, id)
        };
        let mut out = Vec::new();
        let limit = last.unwrap_or(usize::MAX).min(cap);
        if last.is_some() {
            for item in range.rev().take(limit) {
                out.push(parse(&item?.0));
            }
            out.reverse();
        } else {
            for item in range.take(cap) {
                out.push(parse(&item?.0));
            }
        }
        Ok(out)
    }
}

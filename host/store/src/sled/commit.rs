//! A changeset as one atomic write: the record writes with their optimistic version
//! checks and stage counts, the journal events they cause, and what automation adds (run
//! records, outbox messages, timers, jobs), then its ops — all or nothing, committed with
//! whatever else is waiting in one batch and one flush (`group`).

use std::collections::HashMap;

use super::automation::count_follow_up;
use super::codec::Marker;
use super::tx::Tx;
use super::{
    automation, bindings, family, modules, outbox, pipelines, tasks, tenants, SledBackend,
};
use crate::change::{Applied, Changeset, Committed, Durability, Op, RecordWrite};
use crate::{Result, StoreError};
use stagecraft_model::{Record, Timer};

/// Commits each changeset of `batch` on its own (its checks, its writes, all or nothing),
/// together with every other commit waiting at the same time: one batch, one flush (see
/// `group`). A conflict rejects only its own changeset.
pub(super) fn commit_all(b: &SledBackend, batch: &[&Changeset]) -> Vec<Result<Committed>> {
    // Keys are addressed by hash, so a revoke finds its key by id with a scan of what is
    // stored, before the write. Keys never change once stored, so the hash found stays
    // right; the removal inside the write says whether the key was still there.
    let found: Vec<Result<KeyHashes<'_>>> = batch.iter().map(|cs| key_hashes(b, cs)).collect();
    let items: Vec<(&Changeset, &KeyHashes<'_>)> = batch
        .iter()
        .zip(&found)
        .filter_map(|(cs, k)| k.as_ref().ok().map(|k| (*cs, k)))
        .collect();
    let mut written = b
        .data
        .write_all(
            &items,
            |(cs, _)| cs.durability == Durability::Durable,
            |tx, (cs, hashes)| {
                super::index::keep(tx, cs, || {
                    apply(tx, cs)?;
                    cs.ops
                        .iter()
                        .map(|op| apply_op(tx, &cs.tenant, op, hashes))
                        .collect::<Result<Vec<_>>>()
                })
            },
        )
        .into_iter();
    let mut out = Vec::with_capacity(batch.len());
    for (cs, k) in batch.iter().zip(found) {
        let done = match k {
            Err(e) => Err(e),
            Ok(_) => written
                .next()
                .unwrap_or_else(|| Err(StoreError::Backend("the write reported nothing".into()))),
        };
        if done.is_ok() {
            // What the ops finished is no longer held by anyone.
            for op in &cs.ops {
                match op {
                    Op::FinishJob { id } => b.leases.release(&family::job(&cs.tenant, id)),
                    Op::FireTimer { timer, .. } => b.leases.release(&timer.key),
                    _ => {}
                }
            }
        }
        out.push(done.map(|ops| Committed { ops }));
    }
    out
}

/// The hash of each key a `RevokeKey` of `cs` names.
type KeyHashes<'a> = HashMap<&'a str, Option<String>>;

fn key_hashes<'a>(b: &SledBackend, cs: &'a Changeset) -> Result<KeyHashes<'a>> {
    let mut key_hashes = HashMap::new();
    for op in &cs.ops {
        if let Op::RevokeKey { id } = op {
            let hash = b
                .keys(&cs.tenant)?
                .into_iter()
                .find(|k| &k.id == id)
                .map(|k| k.hash);
            key_hashes.insert(id.as_str(), hash);
        }
    }
    Ok(key_hashes)
}

/// One op inside the changeset's transaction (`key_hashes`: the hash of each key a
/// `RevokeKey` names, found before the transaction).
fn apply_op(tx: &Tx<'_>, tenant: &str, op: &Op, key_hashes: &KeyHashes<'_>) -> Result<Applied> {
    let done = |r: Result<()>| r.map(|()| Applied::Done);
    match op {
        Op::CreateTenant {
            tenant: t,
            key,
            pipelines,
        } => done(tenants::create(tx, t, key, pipelines)),
        Op::PutKey { key } => done(tenants::put_key(tx, key)),
        Op::RevokeKey { id } => {
            let hash = key_hashes.get(id.as_str()).cloned().flatten();
            tenants::revoke_key(tx, hash.as_deref()).map(Applied::Revoked)
        }
        Op::PutPipeline { pipeline, expected } => {
            done(pipelines::put(tx, tenant, pipeline, *expected))
        }
        Op::DeletePipeline { id } => done(pipelines::delete(tx, tenant, id)),
        Op::PutBinding { binding, expected } => done(bindings::put(tx, tenant, binding, *expected)),
        Op::DeleteBinding { id } => done(bindings::delete(tx, tenant, id)),
        Op::AddModuleVersion { version, quota } => {
            modules::add_version(tx, tenant, version, quota).map(Applied::ModuleVersion)
        }
        Op::DeleteModuleVersion { module, version } => {
            modules::delete_version(tx, tenant, module, *version).map(Applied::FilesFreed)
        }
        Op::SizeModuleVersion {
            module,
            version,
            artifact_size,
        } => done(modules::size_version(
            tx,
            tenant,
            module,
            *version,
            *artifact_size,
        )),
        Op::PutChannels { config } => {
            outbox::put_channels(tx, tenant, config).map(Applied::Channels)
        }
        Op::InitWebhookSecret { secret } => {
            outbox::init_webhook_secret(tx, tenant, secret).map(Applied::Secret)
        }
        // The one host keeps components in its data dir (the sandbox's files).
        Op::KeepModuleBytes { .. } => Ok(Applied::Done),
        Op::ImportModule { .. } => Err(StoreError::Refused(
            "sled is never the target of a copy (stagecraft migrate copies into PostgreSQL)".into(),
        )),
        Op::PutNotification { notification } => {
            done(outbox::put_notification(tx, tenant, notification))
        }
        Op::DeferMessage { due, at } => done(outbox::defer(tx, due, *at)),
        Op::FinishMessage { message } => done(outbox::finish(tx, tenant, message)),
        Op::RetryMessage { id } => outbox::retry(tx, tenant, id).map(Applied::Message),
        Op::FireTimer { timer, event, job } => {
            automation::fire_timer(tx, timer, event.as_ref(), job.as_ref()).map(Applied::Fired)
        }
        Op::FinishJob { id } => done(tx.remove(&family::job(tenant, id)).map(|_| ())),
        Op::CreateTask { task, caps } => done(tasks::create(tx, tenant, task, caps)),
        Op::UpdateTask { task, expected } => done(tasks::update(tx, tenant, task, *expected)),
        Op::CompleteTask {
            id,
            by,
            at,
            expected,
        } => {
            tasks::complete(tx, tenant, id, by, *at, *expected).map(|t| Applied::Task(Box::new(t)))
        }
        Op::AddComment { comment, caps } => done(tasks::add_comment(tx, tenant, comment, caps)),
    }
}

pub(super) fn apply(tx: &Tx<'_>, cs: &Changeset) -> Result<()> {
    let tenant = cs.tenant.as_str();
    for w in &cs.records {
        match w {
            RecordWrite::Put { record, expected } => {
                let key = family::record(tenant, &record.id);
                let current: Option<Record> = tx.get(&key)?;
                check_version(&record.id, current.as_ref(), *expected)?;
                if let Some(c) = &current {
                    count(tx, tenant, c, -1)?;
                    if c.stage != record.stage {
                        cancel_timers(tx, tenant, &record.id, record.stage.as_deref())?;
                    }
                }
                count(tx, tenant, record.as_ref(), 1)?;
                tx.put(&key, record.as_ref())?;
            }
            RecordWrite::Delete { id, expected } => {
                let key = family::record(tenant, id);
                let current: Option<Record> = tx.get(&key)?;
                check_version(id, current.as_ref(), Some(*expected))?;
                if let Some(c) = &current {
                    count(tx, tenant, c, -1)?;
                }
                cancel_timers(tx, tenant, id, None)?;
                tx.remove(&key)?;
            }
        }
    }
    for e in &cs.events {
        super::journal::append(tx, tenant, e)?;
    }
    for r in &cs.runs {
        let key = family::run(tenant, &r.id);
        if tx.exists(&key)? {
            return Err(StoreError::AlreadyDone(r.id.clone()));
        }
        tx.put(&key, r)?;
        // Stats and the binding's run index move with the run, in this same transaction.
        super::stats::add_run(tx, tenant, r)?;
    }
    for m in &cs.messages {
        if let Some(k) = &m.idempotency_key {
            let ikey = family::idempotency(tenant, k);
            if tx.exists(&ikey)? {
                continue;
            }
            tx.put(&ikey, m.id.as_str())?;
        }
        tx.put(&family::message(tenant, &m.id), m)?;
        let at = m.next_attempt_at.unwrap_or(m.created_at);
        tx.put(&family::due(at.timestamp_millis(), tenant, &m.id), &Marker)?;
    }
    for t in &cs.timers {
        // A timer tied to a stage the record has already left within this same change (or a
        // record this change deleted) is born cancelled.
        if let Some(stage) = &t.stage {
            let now_in: Option<Record> = tx.get(&family::record(tenant, &t.record))?;
            if now_in.and_then(|r| r.stage).as_deref() != Some(stage.as_str()) {
                continue;
            }
        }
        let key = family::timer(t.due.timestamp_millis(), tenant, &t.id);
        let (pair, all) = count_follow_up(tx, tenant, t, 1)?;
        if let Some(caps) = cs.follow_up_caps {
            if let Some(message) = caps.exceeded(&t.binding, &t.record, pair, all) {
                return Err(StoreError::Stale(message));
            }
        }
        tx.put(&key, t)?;
        let list_key = family::record_timers(tenant, &t.record);
        let mut list: Vec<String> = tx.get(&list_key)?.unwrap_or_default();
        list.push(key);
        tx.put(&list_key, &list)?;
    }
    for j in &cs.jobs {
        tx.put(&family::job(tenant, &j.id), j)?;
    }
    Ok(())
}

/// Drops the record's timers tied to a stage other than `now_in` (all of them when None).
fn cancel_timers(tx: &Tx<'_>, tenant: &str, record: &str, now_in: Option<&str>) -> Result<()> {
    let list_key = family::record_timers(tenant, record);
    let Some(list) = tx.get::<Vec<String>>(&list_key)? else {
        return Ok(());
    };
    let mut keep = Vec::new();
    for key in list {
        let Some(t) = tx.get::<Timer>(&key)? else {
            continue; // fired already
        };
        let tied_elsewhere = t.stage.is_some() && t.stage.as_deref() != now_in;
        if now_in.is_none() || tied_elsewhere {
            tx.remove(&key)?;
            count_follow_up(tx, tenant, &t, -1)?;
        } else {
            keep.push(key);
        }
    }
    if keep.is_empty() {
        tx.remove(&list_key)?;
    } else {
        tx.put(&list_key, &keep)?;
    }
    Ok(())
}

fn check_version(id: &str, current: Option<&Record>, expected: Option<u64>) -> Result<()> {
    match (current, expected) {
        (Some(_), None) => Err(StoreError::AlreadyExists(format!("record {id:?}"))),
        (None, Some(_)) => Err(StoreError::NotFound(format!("record {id:?}"))),
        (Some(c), Some(v)) if c.version != v => Err(StoreError::VersionConflict {
            what: format!("record {id:?}"),
            expected: v,
            found: c.version,
        }),
        _ => Ok(()),
    }
}

fn count(tx: &Tx<'_>, tenant: &str, r: &Record, delta: i64) -> Result<()> {
    if let (Some(p), Some(s)) = (&r.pipeline, &r.stage) {
        tx.add(&family::stage_count(tenant, p, s), delta)?;
    }
    Ok(())
}

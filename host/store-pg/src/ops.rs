//! The changeset's [`Op`]s, each inside its transaction: version checks as conditional
//! updates, occupancy and use counts read in the same SERIALIZABLE transaction (a concurrent
//! write that would change what was read makes one of the two retry), module version
//! numbers taken with an atomic increment.

use chrono::Utc;
use postgres::Transaction;
use stagecraft_model::{
    ApiKey, Binding, ChannelConfig, MessageStatus, Module, ModuleVersion, OutboxMessage, Pipeline,
};
use stagecraft_store::{Applied, ModuleQuota, ModuleUsage, Op, StoreError};

use crate::sql::{big, dec, enc, ms, TxResult};

pub fn apply(tx: &mut Transaction<'_>, tenant: &str, op: &Op) -> TxResult<Applied> {
    Ok(match op {
        Op::CreateTenant {
            tenant: t,
            key,
            pipelines,
        } => {
            let n = tx.execute(
                "INSERT INTO tenants (tenant, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&t.id, &enc("a tenant", t)?],
            )?;
            if n == 0 {
                return Err(StoreError::AlreadyExists(format!("tenant {:?}", t.id)).into());
            }
            store_key(tx, key)?;
            for p in pipelines {
                tx.execute(
                    "INSERT INTO pipelines (tenant, id, version, value) VALUES ($1, $2, $3, $4)",
                    &[&t.id, &p.id, &big(p.version), &enc("a pipeline", p)?],
                )?;
            }
            Applied::Done
        }
        Op::PutKey { key } => {
            let exists = tx.query_opt("SELECT 1 FROM tenants WHERE tenant = $1", &[&key.tenant])?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("tenant {:?}", key.tenant)).into());
            }
            store_key(tx, key)?;
            Applied::Done
        }
        Op::RevokeKey { id } => Applied::Revoked(
            tx.execute(
                "DELETE FROM api_keys WHERE tenant = $1 AND id = $2",
                &[&tenant, id],
            )? > 0,
        ),
        Op::PutPipeline { pipeline, expected } => {
            put_pipeline(tx, tenant, pipeline, *expected)?;
            Applied::Done
        }
        Op::DeletePipeline { id } => {
            delete_pipeline(tx, tenant, id)?;
            Applied::Done
        }
        Op::PutBinding { binding, expected } => {
            put_binding(tx, tenant, binding, *expected)?;
            Applied::Done
        }
        Op::DeleteBinding { id } => {
            let n = tx.execute(
                "DELETE FROM bindings WHERE tenant = $1 AND id = $2",
                &[&tenant, id],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("binding {id:?}")).into());
            }
            Applied::Done
        }
        Op::AddModuleVersion { version, quota } => {
            Applied::ModuleVersion(crate::ops::add_version(tx, tenant, version, quota)?)
        }
        Op::DeleteModuleVersion { module, version } => {
            Applied::FilesFreed(delete_version(tx, tenant, module, *version)?)
        }
        Op::SizeModuleVersion {
            module,
            version,
            artifact_size,
        } => {
            size_version(tx, tenant, module, *version, *artifact_size)?;
            Applied::Done
        }
        Op::PutChannels { config } => Applied::Channels(put_channels(tx, tenant, config)?),
        Op::InitWebhookSecret { secret } => {
            tx.execute(
                "INSERT INTO webhook_secrets (tenant, secret) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&tenant, secret],
            )?;
            let row = tx.query_one(
                "SELECT secret FROM webhook_secrets WHERE tenant = $1",
                &[&tenant],
            )?;
            Applied::Secret(row.get(0))
        }
        Op::KeepModuleBytes { hash, bytes } => {
            tx.execute(
                "INSERT INTO module_blobs (tenant, hash, bytes) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant, hash) DO NOTHING",
                &[&tenant, hash, &&bytes[..]],
            )?;
            Applied::Done
        }
        Op::ImportModule { module, versions } => {
            import_module(tx, tenant, module, versions)?;
            Applied::Done
        }
        Op::PutNotification { notification: n } => {
            tx.execute(
                "INSERT INTO notifications (tenant, \"user\", id, value) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant, \"user\", id) DO UPDATE SET value = EXCLUDED.value",
                &[&tenant, &n.user, &n.id, &enc("a notification", n)?],
            )?;
            Applied::Done
        }
        Op::DeferMessage { due, at } => {
            let key_ms = crate::lease::due_ms_of(&due.key);
            tx.execute(
                "UPDATE messages SET due_ms = $4 WHERE tenant = $1 AND id = $2 \
                 AND status = 'queued' AND due_ms = $3",
                &[&due.tenant, &due.id, &key_ms, &ms(*at)],
            )?;
            Applied::Done
        }
        Op::FinishMessage { message } => {
            finish_message(tx, tenant, message)?;
            Applied::Done
        }
        Op::RetryMessage { id } => Applied::Message(retry_message(tx, tenant, id)?),
        Op::FireTimer { timer, event, job } => {
            let n = tx.execute(
                "DELETE FROM timers WHERE tenant = $1 AND id = $2",
                &[&timer.tenant, &timer.timer.id],
            )?;
            if n == 0 {
                Applied::Fired(false)
            } else {
                if let Some(e) = event {
                    crate::commit::insert_event(tx, &timer.tenant, e)?;
                }
                if let Some(j) = job {
                    tx.execute(
                        "INSERT INTO jobs (tenant, id, value) VALUES ($1, $2, $3) \
                         ON CONFLICT (tenant, id) DO UPDATE SET value = EXCLUDED.value",
                        &[&timer.tenant, &j.id, &enc("a job", j)?],
                    )?;
                }
                Applied::Fired(true)
            }
        }
        Op::FinishJob { id } => {
            tx.execute(
                "DELETE FROM jobs WHERE tenant = $1 AND id = $2",
                &[&tenant, id],
            )?;
            Applied::Done
        }
        Op::CreateTask { task, caps } => {
            crate::tasks::create(tx, tenant, task, caps)?;
            Applied::Done
        }
        Op::UpdateTask { task, expected } => {
            crate::tasks::update(tx, tenant, task, *expected)?;
            Applied::Done
        }
        Op::CompleteTask {
            id,
            by,
            at,
            expected,
        } => Applied::Task(Box::new(crate::tasks::complete(
            tx, tenant, id, by, *at, *expected,
        )?)),
        Op::AddComment { comment, caps } => {
            crate::tasks::add_comment(tx, tenant, comment, caps)?;
            Applied::Done
        }
    })
}

/// Stores a key under its hash (a hash names one key in all tenants).
fn store_key(tx: &mut Transaction<'_>, key: &ApiKey) -> TxResult<()> {
    tx.execute("DELETE FROM api_keys WHERE hash = $1", &[&key.hash])?;
    tx.execute(
        "INSERT INTO api_keys (tenant, hash, id, value) VALUES ($1, $2, $3, $4)",
        &[&key.tenant, &key.hash, &key.id, &enc("a key", key)?],
    )?;
    Ok(())
}

/// How many records sit in each of `stages` of pipeline `id` (those that hold any).
fn occupied(
    tx: &mut Transaction<'_>,
    tenant: &str,
    id: &str,
    stages: &[String],
) -> TxResult<Option<(String, i64)>> {
    let row = tx.query_opt(
        "SELECT stage, count(*) FROM records WHERE tenant = $1 AND pipeline = $2 \
         AND stage = ANY($3) GROUP BY stage ORDER BY stage LIMIT 1",
        &[&tenant, &id, &stages],
    )?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

fn put_pipeline(
    tx: &mut Transaction<'_>,
    tenant: &str,
    p: &Pipeline,
    expected: Option<u64>,
) -> TxResult<()> {
    let what = || format!("pipeline {:?}", p.id);
    let value = enc("a pipeline", p)?;
    let Some(v) = expected else {
        let n = tx.execute(
            "INSERT INTO pipelines (tenant, id, version, value) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
            &[&tenant, &p.id, &big(p.version), &value],
        )?;
        if n == 0 {
            return Err(StoreError::AlreadyExists(what()).into());
        }
        return Ok(());
    };
    let old = tx.query_opt(
        "UPDATE pipelines n SET version = $3, value = $4 FROM pipelines o \
         WHERE o.tenant = n.tenant AND o.id = n.id AND n.tenant = $1 AND n.id = $2 \
         AND n.version = $5 RETURNING o.value",
        &[&tenant, &p.id, &big(p.version), &value, &big(v)],
    )?;
    let Some(old) = old else {
        let found = tx.query_opt(
            "SELECT version FROM pipelines WHERE tenant = $1 AND id = $2",
            &[&tenant, &p.id],
        )?;
        return Err(match found {
            None => StoreError::NotFound(what()),
            Some(r) => StoreError::VersionConflict {
                what: what(),
                expected: v,
                found: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0),
            },
        }
        .into());
    };
    let old: Pipeline = dec(&what(), old.get::<_, &[u8]>(0))?;
    let dropped: Vec<String> = old
        .stages
        .iter()
        .filter(|s| p.stage(&s.id).is_none())
        .map(|s| s.id.clone())
        .collect();
    if let Some((stage, n)) = occupied(tx, tenant, &p.id, &dropped)? {
        return Err(StoreError::Refused(format!(
            "stage {stage:?} still holds {n} record(s); move them before removing it"
        ))
        .into());
    }
    Ok(())
}

fn delete_pipeline(tx: &mut Transaction<'_>, tenant: &str, id: &str) -> TxResult<()> {
    let old = tx.query_opt(
        "DELETE FROM pipelines WHERE tenant = $1 AND id = $2 RETURNING value",
        &[&tenant, &id],
    )?;
    let Some(old) = old else {
        return Err(StoreError::NotFound(format!("pipeline {id:?}")).into());
    };
    let old: Pipeline = dec("a pipeline", old.get::<_, &[u8]>(0))?;
    let stages: Vec<String> = old.stages.iter().map(|s| s.id.clone()).collect();
    if let Some((stage, n)) = occupied(tx, tenant, id, &stages)? {
        return Err(StoreError::Refused(format!(
            "pipeline {id:?} still holds {n} record(s) in stage {stage:?}"
        ))
        .into());
    }
    Ok(())
}

fn put_binding(
    tx: &mut Transaction<'_>,
    tenant: &str,
    b: &Binding,
    expected: Option<u64>,
) -> TxResult<()> {
    let what = || format!("binding {:?}", b.id);
    let version_exists = tx.query_opt(
        "SELECT 1 FROM module_versions WHERE tenant = $1 AND module = $2 AND version = $3 FOR SHARE",
        &[&tenant, &b.module, &i64::from(b.version)],
    )?;
    let value = enc("a binding", b)?;
    let n = match expected {
        None => tx.execute(
            "INSERT INTO bindings (tenant, id, revision, module, version, value) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            &[
                &tenant,
                &b.id,
                &big(b.revision),
                &b.module,
                &i64::from(b.version),
                &value,
            ],
        )?,
        Some(v) => tx.execute(
            "UPDATE bindings SET revision = $3, module = $4, version = $5, value = $6 \
             WHERE tenant = $1 AND id = $2 AND revision = $7",
            &[
                &tenant,
                &b.id,
                &big(b.revision),
                &b.module,
                &i64::from(b.version),
                &value,
                &big(v),
            ],
        )?,
    };
    if n == 0 {
        let found = tx.query_opt(
            "SELECT revision FROM bindings WHERE tenant = $1 AND id = $2",
            &[&tenant, &b.id],
        )?;
        return Err(match (found, expected) {
            (Some(_), None) => StoreError::AlreadyExists(what()),
            (None, _) => StoreError::NotFound(what()),
            (Some(r), Some(v)) => StoreError::VersionConflict {
                what: what(),
                expected: v,
                found: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0),
            },
        }
        .into());
    }
    if version_exists.is_none() {
        return Err(StoreError::Refused(format!(
            "module {:?} has no version {}",
            b.module, b.version
        ))
        .into());
    }
    let pipeline = tx.query_opt(
        "SELECT 1 FROM pipelines WHERE tenant = $1 AND id = $2",
        &[&tenant, &b.pipeline],
    )?;
    if pipeline.is_none() {
        return Err(
            StoreError::Refused(format!("pipeline {:?} does not exist", b.pipeline)).into(),
        );
    }
    Ok(())
}

/// What the tenant's modules take, with the stored versions of `module`.
pub fn usage<C: postgres::GenericClient>(
    c: &mut C,
    tenant: &str,
    module: &str,
) -> TxResult<ModuleUsage> {
    let row = c.query_one(
        "SELECT count(DISTINCT module), count(*) FILTER (WHERE module = $2), \
                coalesce(sum(bytes), 0)::BIGINT \
         FROM module_versions WHERE tenant = $1",
        &[&tenant, &module],
    )?;
    Ok(ModuleUsage {
        modules: row.get(0),
        versions: row.get(1),
        bytes: row.get(2),
    })
}

fn stored_bytes(v: &ModuleVersion) -> i64 {
    big(v.size.saturating_add(v.artifact_size))
}

/// A module and its versions as another store had them (`stagecraft migrate`).
fn import_module(
    tx: &mut Transaction<'_>,
    tenant: &str,
    m: &Module,
    versions: &[ModuleVersion],
) -> TxResult<()> {
    let n = tx.execute(
        "INSERT INTO modules (tenant, name, latest, value) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant, name) DO NOTHING",
        &[&tenant, &m.name, &i64::from(m.latest), &enc("a module", m)?],
    )?;
    if n == 0 {
        return Err(StoreError::AlreadyExists(format!("module {:?}", m.name)).into());
    }
    for v in versions {
        tx.execute(
            "INSERT INTO module_versions (tenant, module, version, hash, bytes, value) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &tenant,
                &m.name,
                &i64::from(v.version),
                &v.hash,
                &stored_bytes(v),
                &enc("a module version", v)?,
            ],
        )?;
    }
    Ok(())
}

fn add_version(
    tx: &mut Transaction<'_>,
    tenant: &str,
    v: &ModuleVersion,
    quota: &ModuleQuota,
) -> TxResult<ModuleVersion> {
    let name = v.module.as_str();
    let now = Utc::now();
    let fresh = Module {
        name: name.to_string(),
        latest: 1,
        created_at: now,
        updated_at: now,
    };
    // The number is taken under the module row's lock: two uploads never get the same one.
    // A module that was there already (its stored row still names its previous latest) is
    // rewritten with the new number, its creation time kept, still under that lock.
    let row = tx.query_one(
        "INSERT INTO modules (tenant, name, latest, value) VALUES ($1, $2, 1, $3) \
         ON CONFLICT (tenant, name) DO UPDATE SET latest = modules.latest + 1 \
         RETURNING latest, value",
        &[&tenant, &name, &enc("a module", &fresh)?],
    )?;
    let latest = u32::try_from(row.get::<_, i64>(0)).unwrap_or(u32::MAX);
    let mut m: Module = dec("a module", row.get::<_, &[u8]>(1))?;
    if m.latest != latest {
        m.latest = latest;
        m.updated_at = now;
        tx.execute(
            "UPDATE modules SET value = $3 WHERE tenant = $1 AND name = $2",
            &[&tenant, &name, &enc("a module", &m)?],
        )?;
    }
    let mut v = v.clone();
    v.version = latest;
    let usage = usage(tx, tenant, name)?;
    let need = v.size.saturating_add(v.artifact_size);
    quota.admit(
        name,
        &usage,
        need,
        &format!("{need} bytes with its compiled artifact"),
    )?;
    tx.execute(
        "INSERT INTO module_versions (tenant, module, version, hash, bytes, value) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &tenant,
            &name,
            &i64::from(v.version),
            &v.hash,
            &stored_bytes(&v),
            &enc("a module version", &v)?,
        ],
    )?;
    Ok(v)
}

fn delete_version(
    tx: &mut Transaction<'_>,
    tenant: &str,
    name: &str,
    version: u32,
) -> TxResult<Option<String>> {
    let uses: i64 = tx
        .query_one(
            "SELECT count(*) FROM bindings WHERE tenant = $1 AND module = $2 AND version = $3",
            &[&tenant, &name, &i64::from(version)],
        )?
        .get(0);
    let gone = tx.query_opt(
        "DELETE FROM module_versions WHERE tenant = $1 AND module = $2 AND version = $3 \
         RETURNING hash",
        &[&tenant, &name, &i64::from(version)],
    )?;
    let Some(gone) = gone else {
        return Err(StoreError::NotFound(format!("module {name:?} version {version}")).into());
    };
    if uses > 0 {
        return Err(StoreError::Refused(format!(
            "module {name:?} version {version} is enabled in {uses} binding(s); switch or delete them first"
        ))
        .into());
    }
    let hash: String = gone.get(0);
    // The tenant's copy of the component goes with its last version that has it.
    tx.execute(
        "DELETE FROM module_blobs WHERE tenant = $1 AND hash = $2 AND NOT EXISTS \
         (SELECT 1 FROM module_versions WHERE tenant = $1 AND hash = $2)",
        &[&tenant, &hash],
    )?;
    let left: i64 = tx
        .query_one(
            "SELECT count(*) FROM module_versions WHERE hash = $1",
            &[&hash],
        )?
        .get(0);
    Ok((left == 0).then_some(hash))
}

fn size_version(
    tx: &mut Transaction<'_>,
    tenant: &str,
    name: &str,
    version: u32,
    artifact_size: u64,
) -> TxResult<()> {
    let row = tx.query_opt(
        "SELECT value FROM module_versions WHERE tenant = $1 AND module = $2 \
         AND version = $3 FOR UPDATE",
        &[&tenant, &name, &i64::from(version)],
    )?;
    let Some(row) = row else { return Ok(()) };
    let mut v: ModuleVersion = dec("a module version", row.get::<_, &[u8]>(0))?;
    if v.artifact_size != 0 {
        return Ok(());
    }
    v.artifact_size = artifact_size;
    tx.execute(
        "UPDATE module_versions SET bytes = $4, value = $5 WHERE tenant = $1 AND module = $2 \
         AND version = $3",
        &[
            &tenant,
            &name,
            &i64::from(version),
            &stored_bytes(&v),
            &enc("a module version", &v)?,
        ],
    )?;
    Ok(())
}

fn put_channels(
    tx: &mut Transaction<'_>,
    tenant: &str,
    cfg: &ChannelConfig,
) -> TxResult<ChannelConfig> {
    let old = tx.query_opt(
        "SELECT value FROM channels WHERE tenant = $1 FOR UPDATE",
        &[&tenant],
    )?;
    let old: ChannelConfig = match old {
        Some(r) => dec("channel settings", r.get::<_, &[u8]>(0))?,
        None => ChannelConfig::default(),
    };
    let mut new = cfg.clone();
    // A kept secret only ever goes where it went before: changing the destination without
    // resending the secret drops it.
    if let (Some(n), Some(o)) = (&mut new.email, &old.email) {
        if n.password.is_none() && n.host == o.host && n.port == o.port {
            n.password = o.password.clone();
        }
    }
    if let (Some(n), Some(o)) = (&mut new.sms, &old.sms) {
        if n.token.is_none() && n.url == o.url {
            n.token = o.token.clone();
        }
    }
    tx.execute(
        "INSERT INTO channels (tenant, value) VALUES ($1, $2) \
         ON CONFLICT (tenant) DO UPDATE SET value = EXCLUDED.value",
        &[&tenant, &enc("channel settings", &new)?],
    )?;
    Ok(new)
}

/// Stores a message after an attempt (its lease ends); sent and dead ones count in the
/// rollups of the run that queued it.
fn finish_message(tx: &mut Transaction<'_>, tenant: &str, m: &OutboxMessage) -> TxResult<()> {
    let due =
        (m.status == MessageStatus::Queued).then(|| ms(m.next_attempt_at.unwrap_or_else(Utc::now)));
    crate::commit::store_message(tx, tenant, m, due)?;
    let sent = match m.status {
        MessageStatus::Sent => true,
        MessageStatus::Dead => false,
        MessageStatus::Queued | MessageStatus::Sending => return Ok(()),
    };
    let owner = tx.query_opt(
        "SELECT module, binding FROM runs WHERE tenant = $1 AND id = $2",
        &[&tenant, &m.run],
    )?;
    let Some(owner) = owner else { return Ok(()) };
    let (module, binding): (String, String) = (owner.get(0), owner.get(1));
    let at = m
        .attempts
        .last()
        .map(|a| a.at)
        .or(m.sent_at)
        .unwrap_or_else(Utc::now);
    let hour = stagecraft_model::stats::hour_of(at);
    for (scope, who) in [("m", &module), ("b", &binding)] {
        crate::commit::roll(tx, tenant, scope, who, hour, |r| r.add_delivery(sent))?;
    }
    Ok(())
}

fn retry_message(tx: &mut Transaction<'_>, tenant: &str, id: &str) -> TxResult<OutboxMessage> {
    let row = tx.query_opt(
        "SELECT value FROM messages WHERE tenant = $1 AND id = $2 FOR UPDATE",
        &[&tenant, &id],
    )?;
    let Some(row) = row else {
        return Err(StoreError::NotFound(format!("message {id:?}")).into());
    };
    let mut m: OutboxMessage = dec("a message", row.get::<_, &[u8]>(0))?;
    if m.status != MessageStatus::Dead {
        return Err(StoreError::Refused(format!(
            "only dead letters can be retried; message {id:?} is {:?}",
            m.status
        ))
        .into());
    }
    let now = Utc::now();
    m.status = MessageStatus::Queued;
    m.next_attempt_at = Some(now);
    m.created_at = now; // the retry window starts again
    crate::commit::store_message(tx, tenant, &m, Some(ms(now)))?;
    Ok(m)
}

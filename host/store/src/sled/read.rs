//! Point reads: one key each, decoded by its kind's codec.

use super::{family, SledBackend};
use crate::query::{Read, Row};
use crate::Result;

pub(super) fn read(b: &SledBackend, r: &Read) -> Result<Option<Row>> {
    Ok(match r {
        Read::Record { tenant, id } => b.get(&family::record(tenant, id))?.map(Row::Record),
        Read::Event { tenant, id } => super::journal::read(b, &family::event(tenant, id))?
            .map(|(_, e)| Row::Event(Box::new(e))),
        Read::Run { tenant, id } => b.get(&family::run(tenant, id))?.map(Row::Run),
        Read::Message { tenant, id } => b.get(&family::message(tenant, id))?.map(Row::Message),
        Read::Binding { tenant, id } => b.get(&family::binding(tenant, id))?.map(Row::Binding),
        Read::Pipeline { tenant, id } => b.get(&family::pipeline(tenant, id))?.map(Row::Pipeline),
        Read::Module { tenant, name } => b.get(&family::module(tenant, name))?.map(Row::Module),
        Read::ModuleVersion {
            tenant,
            module,
            version,
        } => b
            .get(&family::module_version(tenant, module, *version))?
            .map(Row::ModuleVersion),
        Read::KeyByHash { hash } => b.key_by_hash(hash)?.map(|mut k: stagecraft_model::ApiKey| {
            k.hash = hash.clone();
            Row::Key(k)
        }),
        Read::Channels { tenant } => b.channels(tenant)?.map(Row::Channels),
        Read::WebhookSecret { tenant } => b.get(&family::webhook_secret(tenant))?.map(Row::Secret),
        Read::FollowUps {
            tenant,
            binding,
            record,
        } => {
            let (pair, all) = b.pending_follow_ups(tenant, binding, record)?;
            Some(Row::FollowUps { pair, all })
        }
        Read::ModuleUsage { tenant, module } => {
            Some(Row::ModuleUsage(b.module_usage(tenant, module)?))
        }
        Read::ModuleFileUses { hash } => Some(Row::Count(b.module_file_uses(hash)?)),
        Read::Task { tenant, id } => b.task(tenant, id)?.map(Row::Task),
        Read::QueuedJobs => Some(Row::Count(b.queued_jobs()?)),
        Read::OutboxDepth => Some(Row::Count(b.outbox_depth()?)),
    })
}

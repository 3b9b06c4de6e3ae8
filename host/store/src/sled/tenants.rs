//! Tenants and their API keys.

use super::tx::Tx;
use super::{family, SledBackend};
use crate::{Result, StoreError};
use stagecraft_model::{ApiKey, Pipeline, Tenant};

impl SledBackend {
    pub(super) fn tenants(&self) -> Result<Vec<Tenant>> {
        self.scan("tenant/", None)
            .map(|r| r.map(|(_, t)| t))
            .collect()
    }

    /// The key whose secret hashes to `hash`, with its hash.
    pub(super) fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        self.get(&family::api_key(hash))
    }

    /// A tenant's keys, each with its hash. Scans every tenant's keys (keys are addressed by
    /// hash, which is how a request finds its tenant).
    pub(super) fn keys(&self, tenant: &str) -> Result<Vec<ApiKey>> {
        self.scan::<ApiKey>("key/", None)
            .filter_map(|r| match r {
                Ok((k, mut v)) if v.tenant == tenant => {
                    v.hash = family::id_of(&k).to_string();
                    Some(Ok(v))
                }
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect()
    }
}

/// Creates a tenant with its first key and starting pipelines.
pub(super) fn create(
    tx: &Tx<'_>,
    tenant: &Tenant,
    key: &ApiKey,
    pipelines: &[Pipeline],
) -> Result<()> {
    let k = family::tenant(&tenant.id);
    if tx.exists(&k)? {
        return Err(StoreError::AlreadyExists(format!("tenant {:?}", tenant.id)));
    }
    tx.put(&k, tenant)?;
    tx.put(&family::api_key(&key.hash), key)?;
    for p in pipelines {
        tx.put(&family::pipeline(&tenant.id, &p.id), p)?;
    }
    Ok(())
}

pub(super) fn put_key(tx: &Tx<'_>, key: &ApiKey) -> Result<()> {
    if !tx.exists(&family::tenant(&key.tenant))? {
        return Err(StoreError::NotFound(format!("tenant {:?}", key.tenant)));
    }
    tx.put(&family::api_key(&key.hash), key)
}

/// Revokes the key with this hash (found by its public id before the transaction, see
/// `commit`); false when the tenant has no such key (None) or it is gone already.
pub(super) fn revoke_key(tx: &Tx<'_>, hash: Option<&str>) -> Result<bool> {
    match hash {
        Some(h) => tx.remove(&family::api_key(h)),
        None => Ok(false),
    }
}

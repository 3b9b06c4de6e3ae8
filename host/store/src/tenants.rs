//! Tenants and their API keys.

use super::{family, Result, Store, StoreError};
use crate::model::{ApiKey, Pipeline, Tenant};

impl Store {
    /// Creates a tenant with its first key and starting pipelines, all or nothing.
    pub fn create_tenant(
        &self,
        tenant: &Tenant,
        key: &ApiKey,
        pipelines: &[Pipeline],
    ) -> Result<()> {
        self.transact(|tx| {
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
        })
    }

    pub fn tenants(&self) -> Result<Vec<Tenant>> {
        self.scan("tenant/", None)
            .map(|r| r.map(|(_, t)| t))
            .collect()
    }

    pub fn put_key(&self, key: &ApiKey) -> Result<()> {
        self.transact(|tx| {
            if !tx.exists(&family::tenant(&key.tenant))? {
                return Err(StoreError::NotFound(format!("tenant {:?}", key.tenant)));
            }
            tx.put(&family::api_key(&key.hash), key)
        })
    }

    /// The key whose secret hashes to `hash`.
    pub fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        self.get(&family::api_key(hash))
    }

    pub fn keys(&self, tenant: &str) -> Result<Vec<ApiKey>> {
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

    /// Revokes a key by its public id; false when the tenant has no such key.
    pub fn revoke_key(&self, tenant: &str, id: &str) -> Result<bool> {
        let Some(key) = self.keys(tenant)?.into_iter().find(|k| k.id == id) else {
            return Ok(false);
        };
        self.transact(|tx| tx.remove(&family::api_key(&key.hash)))
    }
}

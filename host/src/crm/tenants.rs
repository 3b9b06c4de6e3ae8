//! Tenants and API keys: bootstrap of a fresh server, minting and hashing keys.

use chrono::Utc;
use rand::Rng;
use sha2::{Digest, Sha256};

use super::{CrmError, Result};
use crate::model::id::{is_valid_slug, new_id};
use crate::model::pipeline::default_stages;
use crate::model::{ApiKey, Pipeline, PipelineKind, Role, Tenant};
use crate::store::{Changeset, Op, Store, StoreError};

/// SHA-256 of a key secret, hex. Keys are 256-bit random, so a fast hash is enough.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn new_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("sc_{}", hex::encode(bytes))
}

fn key_for(tenant: &str, role: Role, name: &str, operator: bool, secret: &str) -> ApiKey {
    ApiKey {
        id: new_id("key"),
        tenant: tenant.to_string(),
        role,
        name: name.to_string(),
        operator,
        user: None,
        created_at: Utc::now(),
        hash: hash_secret(secret),
    }
}

/// The lead and deal pipelines a tenant starts with.
pub fn default_pipelines() -> Vec<Pipeline> {
    let now = Utc::now();
    [
        ("leads", "Leads", PipelineKind::Lead),
        ("deals", "Deals", PipelineKind::Deal),
    ]
    .into_iter()
    .map(|(id, name, kind)| Pipeline {
        id: id.into(),
        name: name.into(),
        kind,
        stages: default_stages(kind),
        version: 1,
        created_at: now,
        updated_at: now,
    })
    .collect()
}

/// On a server with no tenant, creates tenant `default` with an operator admin key and
/// returns the key's secret (`bootstrap` when given, else a fresh one). None when tenants
/// already exist — also when another host on the same database created `default` between
/// this one's look and its commit (hosts starting at once on an empty PostgreSQL): the
/// tenant's primary key lets exactly one create it, and only that host prints a key.
pub fn bootstrap(store: &Store, bootstrap: Option<&str>) -> Result<Option<String>> {
    if !store.tenants()?.is_empty() {
        return Ok(None);
    }
    let secret = match bootstrap {
        Some(s) if s.len() < 16 => {
            return Err(CrmError::Invalid(
                "STAGECRAFT_BOOTSTRAP_KEY must be at least 16 characters".into(),
            ))
        }
        Some(s) => s.to_string(),
        None => new_secret(),
    };
    let tenant = Tenant {
        id: "default".into(),
        name: "Default".into(),
        created_at: Utc::now(),
    };
    let key = key_for(&tenant.id, Role::Admin, "bootstrap", true, &secret);
    let op = Op::CreateTenant {
        tenant: tenant.clone(),
        key,
        pipelines: default_pipelines(),
    };
    match store.commit(&Changeset::op(&tenant.id, op)) {
        Ok(_) => Ok(Some(secret)),
        Err(StoreError::AlreadyExists(_)) if !store.tenants()?.is_empty() => {
            tracing::info!("another host created the first tenant at the same time; serving it");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Creates a tenant with default pipelines and returns it with its first admin key's secret.
pub fn create_tenant(store: &Store, id: &str, name: &str) -> Result<(Tenant, ApiKey, String)> {
    if !is_valid_slug(id) {
        return Err(CrmError::Invalid(format!(
            "tenant id {id:?} must be {}",
            stagecraft_rules::field::SLUG_RULE
        )));
    }
    if name.trim().is_empty() {
        return Err(CrmError::Invalid("tenant name must not be blank".into()));
    }
    let tenant = Tenant {
        id: id.into(),
        name: name.into(),
        created_at: Utc::now(),
    };
    let secret = new_secret();
    let key = key_for(id, Role::Admin, "first admin", false, &secret);
    create(store, &tenant, &key)?;
    Ok((tenant, key, secret))
}

/// API keys a tenant may hold (they are listed whole by `GET /v1/keys`).
pub const MAX_KEYS: usize = 1_000;

/// Mints a key for `tenant` (acting for CRM `user`, if given) and returns it with its secret
/// (shown once).
pub fn mint_key(
    store: &Store,
    tenant: &str,
    role: Role,
    name: &str,
    user: Option<String>,
) -> Result<(ApiKey, String)> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(CrmError::Invalid(
            "key name must be 1-200 characters".into(),
        ));
    }
    if user
        .as_ref()
        .is_some_and(|u| u.trim().is_empty() || u.len() > 200)
    {
        return Err(CrmError::Invalid(
            "key user must be 1-200 characters".into(),
        ));
    }
    if store.keys(tenant)?.len() >= MAX_KEYS {
        return Err(CrmError::Invalid(format!(
            "a tenant has at most {MAX_KEYS} API keys; revoke one first"
        )));
    }
    let secret = new_secret();
    let mut key = key_for(tenant, role, name, false, &secret);
    key.user = user;
    put_key(store, &key)?;
    Ok((key, secret))
}

/// Issues a new admin key for `tenant` straight into the store — the offline recovery of a
/// lost admin key (`stagecraft admin-key`, with the server stopped). Without `tenant`, picks
/// `default`, else the only tenant. `operator` makes it a server-operator key too, as the
/// first start's key is. Returns the tenant's id, the key and its secret (shown once).
pub fn recovery_key(
    store: &Store,
    tenant: Option<&str>,
    operator: bool,
) -> Result<(String, ApiKey, String)> {
    let tenants = store.tenants()?;
    let ids: Vec<&str> = tenants.iter().map(|t| t.id.as_str()).collect();
    let tenant = match (tenant, ids.as_slice()) {
        (_, []) => return Err(CrmError::NotFound("a tenant".into())),
        (Some(t), ids) if ids.contains(&t) => t.to_string(),
        (Some(t), ids) => {
            return Err(CrmError::NotFound(format!(
                "tenant {t:?} (tenants: {})",
                ids.join(", ")
            )))
        }
        (None, ids) if ids.contains(&"default") => "default".into(),
        (None, [only]) => (*only).to_string(),
        (None, ids) => {
            return Err(CrmError::Invalid(format!(
                "{} tenants and none is \"default\": pick one with --tenant ({})",
                ids.len(),
                ids.join(", ")
            )))
        }
    };
    let secret = new_secret();
    let name = format!("recovered offline {}", Utc::now().format("%Y-%m-%d %H:%M"));
    let key = key_for(&tenant, Role::Admin, &name, operator, &secret);
    put_key(store, &key)?;
    Ok((tenant, key, secret))
}

/// Stores a new tenant with its first key and the default pipelines, all or nothing.
fn create(store: &Store, tenant: &Tenant, key: &ApiKey) -> Result<()> {
    let op = Op::CreateTenant {
        tenant: tenant.clone(),
        key: key.clone(),
        pipelines: default_pipelines(),
    };
    store.commit(&Changeset::op(&tenant.id, op))?;
    Ok(())
}

fn put_key(store: &Store, key: &ApiKey) -> Result<()> {
    let op = Op::PutKey { key: key.clone() };
    store.commit(&Changeset::op(&key.tenant, op))?;
    Ok(())
}

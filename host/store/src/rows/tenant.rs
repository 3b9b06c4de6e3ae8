//! Tenant and API key rows. A key's hash is its address (`key/{hash}`), not part of its
//! row: readers fill it in from the key.

use serde::{Deserialize, Serialize};
use stagecraft_model::{ApiKey, Role, Tenant};

use super::{stored_row, RowError, Ts};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TenantRow {
    id: String,
    name: String,
    created_at: Ts,
}

/// Roles (append only).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum RoleRow {
    Agent,
    Developer,
    Admin,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ApiKeyRow {
    id: String,
    tenant: String,
    role: RoleRow,
    name: String,
    operator: bool,
    user: Option<String>,
    created_at: Ts,
}

stored_row!(
    TenantRow => "tenant", 1;
    ApiKeyRow => "API key", 1;
);

impl From<&Tenant> for TenantRow {
    fn from(t: &Tenant) -> TenantRow {
        TenantRow {
            id: t.id.clone(),
            name: t.name.clone(),
            created_at: (&t.created_at).into(),
        }
    }
}

impl TryFrom<TenantRow> for Tenant {
    type Error = RowError;

    fn try_from(t: TenantRow) -> Result<Tenant, RowError> {
        Ok(Tenant {
            id: t.id,
            name: t.name,
            created_at: t.created_at.get()?,
        })
    }
}

impl From<&ApiKey> for ApiKeyRow {
    fn from(k: &ApiKey) -> ApiKeyRow {
        ApiKeyRow {
            id: k.id.clone(),
            tenant: k.tenant.clone(),
            role: match k.role {
                Role::Agent => RoleRow::Agent,
                Role::Developer => RoleRow::Developer,
                Role::Admin => RoleRow::Admin,
            },
            name: k.name.clone(),
            operator: k.operator,
            user: k.user.clone(),
            created_at: (&k.created_at).into(),
        }
    }
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = RowError;

    fn try_from(k: ApiKeyRow) -> Result<ApiKey, RowError> {
        Ok(ApiKey {
            id: k.id,
            tenant: k.tenant,
            role: match k.role {
                RoleRow::Agent => Role::Agent,
                RoleRow::Developer => Role::Developer,
                RoleRow::Admin => Role::Admin,
            },
            name: k.name,
            operator: k.operator,
            user: k.user,
            created_at: k.created_at.get()?,
            hash: String::new(),
        })
    }
}

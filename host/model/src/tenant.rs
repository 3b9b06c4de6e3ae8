//! Tenants own everything; API keys carry a tenant and a role.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// What a key may do inside its tenant. `admin` ⊇ `developer` ⊇ `agent` for reads; writes are
/// checked per route (see `http::auth`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Agent,
    Developer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Developer => "developer",
            Role::Admin => "admin",
        }
    }
}

/// A stored API key. The secret itself is never stored: only its SHA-256 (`hash`), which is
/// also the lookup key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub tenant: String,
    pub role: Role,
    pub name: String,
    /// A server-operator key may create tenants.
    #[serde(default)]
    pub operator: bool,
    /// The CRM user this key acts for (whose in-app notifications it may read).
    #[serde(default)]
    pub user: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing, default)]
    #[schema(ignore)]
    pub hash: String,
}

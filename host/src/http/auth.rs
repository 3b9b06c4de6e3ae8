//! Bearer-key authentication: the key's hash finds its tenant and role.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};

use super::error::ApiError;
use super::AppState;
use crate::crm::tenants::hash_secret;
use crate::model::Role;

/// Who is calling: resolved from `Authorization: Bearer <key>` on every protected route.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: String,
    pub role: Role,
    pub operator: bool,
    pub key_id: String,
    /// The CRM user the key acts for, if any.
    pub user: Option<String>,
}

impl Caller {
    /// Refuses unless the caller's role is at least `role` (admin ⊇ developer ⊇ agent).
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this needs a {} key; yours is {}",
                    role.as_str(),
                    self.role.as_str()
                ),
            ))
        }
    }

    /// Refuses unless the caller's role is one of `roles` exactly.
    pub fn require_one_of(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            return Ok(());
        }
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this needs a {} key; yours is {}",
                names.join(" or "),
                self.role.as_str()
            ),
        ))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized("missing Authorization: Bearer <key> header"));
        };
        let value = value
            .to_str()
            .map_err(|_| unauthorized("the Authorization header is not valid text"))?;
        let Some(secret) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
        else {
            return Err(unauthorized(
                "the Authorization header must be `Bearer <key>`",
            ));
        };
        let key = state
            .store
            .key_by_hash(&hash_secret(secret.trim()))?
            .ok_or_else(|| unauthorized("unknown or revoked API key"))?;
        Ok(Caller {
            tenant: key.tenant,
            role: key.role,
            operator: key.operator,
            key_id: key.id,
            user: key.user,
        })
    }
}

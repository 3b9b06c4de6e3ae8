//! Bearer-key authentication: the key's hash finds its tenant and role. The admin console's
//! in-process calls carry a [`Preauthenticated`] caller instead (see `console::api`).

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
                    "this needs {} key; yours is {}",
                    with_article(role.as_str()),
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
                "this needs {} key; yours is {}",
                with_article(&names.join(" or ")),
                self.role.as_str()
            ),
        ))
    }
}

/// "an admin", "a developer".
fn with_article(word: &str) -> String {
    let article = if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {word}")
}

/// A caller the admin console resolved from its session (through [`caller_for_key_hash`],
/// so a revoked key ends its sessions). Only this crate can build one, and only the console's
/// in-process dispatch attaches it to a request as an extension: a request from the network
/// carries no Rust extensions, so it cannot be forged from outside.
#[derive(Debug, Clone)]
pub(crate) struct Preauthenticated(pub(crate) Caller);

/// The caller a key hash belongs to, or None for an unknown or revoked key.
pub(crate) fn caller_for_key_hash(
    store: &crate::store::Store,
    hash: &str,
) -> Result<Option<(Caller, String)>, ApiError> {
    Ok(store.key_by_hash(hash)?.map(|key| {
        (
            Caller {
                tenant: key.tenant,
                role: key.role,
                operator: key.operator,
                key_id: key.id,
                user: key.user,
            },
            key.name,
        )
    }))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(Preauthenticated(caller)) = parts.extensions.get::<Preauthenticated>() {
            return Ok(caller.clone());
        }
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
        caller_for_key_hash(&state.store, &hash_secret(secret.trim()))?
            .map(|(caller, _name)| caller)
            .ok_or_else(|| unauthorized("unknown or revoked API key"))
    }
}

//! Console sign-ins: a random session id in an HttpOnly, SameSite=Strict cookie, kept with
//! an expiry — in memory on one host on sled (a restart signs everyone out), in the
//! database with many hosts on PostgreSQL (any host answers a sign-in made through
//! another; see `stagecraft_store_pg::shared`). Either way sessions are keyed by the id's
//! SHA-256 and hold the API key's hash — never the key — so a revoked key ends its
//! sessions on the next request. Each session has its own CSRF token that every form
//! carries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::header::{COOKIE, HOST, ORIGIN};
use axum::http::HeaderMap;
use rand::Rng;
use sha2::{Digest, Sha256};
use stagecraft_store_pg::shared::StoredSession;
use stagecraft_store_pg::PgBackend;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "sc_session";
/// The language cookie's name.
pub const LANG_COOKIE: &str = "sc_lang";
/// The cookie that carries the sign-in form's CSRF token (there is no session yet).
pub const LOGIN_COOKIE: &str = "sc_login";

/// A message shown once on the next page.
#[derive(Debug, Clone)]
pub struct Flash {
    pub error: bool,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct Session {
    /// SHA-256 of the API key that signed in (what the key store is keyed by).
    pub key_hash: String,
    pub csrf: String,
    pub expires: Instant,
    flash: Option<Flash>,
}

/// Every live session, by the hash of its id: in this process's memory, or in the shared
/// database when there is one.
pub struct Sessions {
    ttl: Duration,
    map: Mutex<HashMap<String, Session>>,
    db: Option<Arc<PgBackend>>,
}

/// 32 random bytes, hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// Compares two tokens without stopping at the first difference.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    pub fn new(ttl: Duration) -> Sessions {
        Sessions {
            ttl,
            map: Mutex::new(HashMap::new()),
            db: None,
        }
    }

    /// Sessions kept in the database every host shares.
    pub fn shared(ttl: Duration, db: Arc<PgBackend>) -> Sessions {
        Sessions {
            db: Some(db),
            ..Sessions::new(ttl)
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock cannot leave a session half-written (every update
        // is a single insert or field store), so a poisoned map is still consistent.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session for the key with this hash (of `tenant`); returns the id for the
    /// cookie. With a shared database, None when it could not be stored.
    pub fn create(&self, tenant: &str, key_hash: String) -> Option<String> {
        let id = random_token();
        if let Some(db) = &self.db {
            let now = now_ms();
            let row = StoredSession {
                tenant: tenant.to_string(),
                hash: hash(&id),
                key_hash,
                csrf: random_token(),
                expires_ms: now
                    .saturating_add(i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX)),
                flash: None,
            };
            return match db.put_session(&row, now) {
                Ok(()) => Some(id),
                Err(e) => {
                    tracing::error!(error = %e, "cannot store a console session");
                    None
                }
            };
        }
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        map.insert(
            hash(&id),
            Session {
                key_hash,
                csrf: random_token(),
                expires: now + self.ttl,
                flash: None,
            },
        );
        Some(id)
    }

    /// The live session with this id; an expired one is removed and not returned.
    pub fn get(&self, id: &str) -> Option<Session> {
        let key = hash(id);
        if let Some(db) = &self.db {
            let row = db
                .session(&key, now_ms())
                .inspect_err(|e| tracing::error!(error = %e, "cannot read a console session"))
                .ok()??;
            let left = u64::try_from(row.expires_ms.saturating_sub(now_ms())).unwrap_or(0);
            return Some(Session {
                key_hash: row.key_hash,
                csrf: row.csrf,
                expires: Instant::now() + Duration::from_millis(left),
                flash: None,
            });
        }
        let mut map = self.lock();
        let live = map.get(&key).is_some_and(|s| s.expires > Instant::now());
        if !live {
            map.remove(&key);
            return None;
        }
        map.get(&key).cloned()
    }

    pub fn remove(&self, id: &str) {
        if let Some(db) = &self.db {
            if let Err(e) = db.remove_session(&hash(id)) {
                tracing::error!(error = %e, "cannot remove a console session");
            }
            return;
        }
        self.lock().remove(&hash(id));
    }

    pub fn set_flash(&self, id: &str, flash: Flash) {
        if let Some(db) = &self.db {
            let v = serde_json::json!({"error": flash.error, "text": flash.text});
            if let Err(e) = db.set_session_flash(&hash(id), Some(&v)) {
                tracing::error!(error = %e, "cannot store a console message");
            }
            return;
        }
        if let Some(s) = self.lock().get_mut(&hash(id)) {
            s.flash = Some(flash);
        }
    }

    pub fn take_flash(&self, id: &str) -> Option<Flash> {
        if let Some(db) = &self.db {
            let v = db
                .take_session_flash(&hash(id))
                .inspect_err(|e| tracing::error!(error = %e, "cannot read a console message"))
                .ok()??;
            return Some(Flash {
                error: v["error"].as_bool().unwrap_or(false),
                text: v["text"].as_str().unwrap_or_default().to_string(),
            });
        }
        self.lock().get_mut(&hash(id)).and_then(|s| s.flash.take())
    }
}

/// The value of cookie `name` in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A Set-Cookie value for the console: HttpOnly, SameSite=Strict, scoped to `/`.
pub fn set_cookie(name: &str, value: &str, max_age: Duration) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        max_age.as_secs()
    )
}

/// Refuses a cross-site POST: when the browser says where the form came from (`Origin`, or
/// `Sec-Fetch-Site`), it must be this host. Requests without either (non-browser clients)
/// still need the CSRF token.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site == "cross-site" || site == "same-site" {
            return false;
        }
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let Some(host) = headers.get(HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin == format!("http://{host}") || origin == format!("https://{host}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sessions_expire_and_are_keyed_by_hash() {
        let live = Sessions::new(Duration::from_secs(60));
        let id = live.create("t", "keyhash".into()).unwrap();
        assert_eq!(live.get(&id).unwrap().key_hash, "keyhash");
        assert!(
            live.lock().get(&id).is_none(),
            "the raw id is not the map key"
        );
        live.remove(&id);
        assert!(live.get(&id).is_none());

        let expired = Sessions::new(Duration::ZERO);
        let id = expired.create("t", "k".into()).unwrap();
        assert!(expired.get(&id).is_none());
    }

    #[test]
    fn origin_must_match_host() {
        let mut h = HeaderMap::new();
        h.insert(HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(ORIGIN, "http://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert(ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(!same_origin(&h));
    }

    #[test]
    fn tokens_compare() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "ab"));
    }
}

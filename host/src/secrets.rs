//! Tenants' secrets (API keys modules use without seeing them), encrypted at rest. Write-only
//! through the API: set, list names, delete; a value leaves this module only to the sandbox
//! ([`SecretSource`]), which puts it into a granted request as it is sent.
//!
//! Each tenant's secrets are one file under `data/secrets/`, each value sealed with
//! ChaCha20-Poly1305 under the server key (from `STAGECRAFT_SECRETS_KEY` or a key file, never
//! stored with the data), a fresh random nonce per value, and the tenant and name as
//! associated data (a sealed value moved to another slot does not open). Without a key the
//! server keeps no secrets and says so (`secrets_disabled`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use crate::model::outbound::valid_secret_name;
use crate::sandbox::SecretSource;

/// Secrets one tenant may keep.
pub const MAX_SECRETS: usize = 100;
/// Largest secret value, bytes.
pub const MAX_VALUE_BYTES: usize = 4096;

/// The server's 32-byte key (printed as `SecretsKey(..)`, never its bytes).
#[derive(Clone)]
pub struct SecretsKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey(..)")
    }
}

impl SecretsKey {
    /// A key written as 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<SecretsKey, String> {
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), key.as_mut_slice())
            .map_err(|_| "a secrets key is 64 hex digits (32 bytes)".to_string())?;
        Ok(SecretsKey(key))
    }

    /// The key in the file at `path`.
    pub fn from_file(path: &Path) -> Result<SecretsKey, String> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
        );
        SecretsKey::from_hex(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("this server keeps no secrets: it was started without a secrets key (STAGECRAFT_SECRETS_KEY or serve --secrets-key-file)")]
    Disabled,
    #[error("{0}")]
    Invalid(String),
    #[error("secret {0:?}")]
    NotFound(String),
    #[error("secrets storage failed: {0}")]
    Io(String),
}

/// A secret as the API lists it: its name, never its value.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecretName {
    pub name: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    /// Hex of nonce, ciphertext and tag.
    sealed: String,
    updated_at: DateTime<Utc>,
}

/// The secrets of every tenant, one file each.
pub struct Vault {
    dir: PathBuf,
    key: Option<LessSafeKey>,
    rng: SystemRandom,
    /// One writer at a time (a file is read, changed and replaced whole).
    writing: Mutex<()>,
}

impl Vault {
    pub fn new(dir: PathBuf, key: Option<&SecretsKey>) -> Result<Vault, String> {
        let key = match key {
            Some(k) => Some(LessSafeKey::new(
                UnboundKey::new(&CHACHA20_POLY1305, k.0.as_slice())
                    .map_err(|_| "the secrets key was refused".to_string())?,
            )),
            None => None,
        };
        Ok(Vault {
            dir,
            key,
            rng: SystemRandom::new(),
            writing: Mutex::new(()),
        })
    }

    fn file(&self, tenant: &str) -> PathBuf {
        self.dir.join(format!("{}.json", hex::encode(tenant)))
    }

    fn read(&self, tenant: &str) -> Result<BTreeMap<String, Sealed>, SecretError> {
        match std::fs::read(self.file(tenant)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| SecretError::Io(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(SecretError::Io(e.to_string())),
        }
    }

    fn write(&self, tenant: &str, all: &BTreeMap<String, Sealed>) -> Result<(), SecretError> {
        let io = |e: std::io::Error| SecretError::Io(e.to_string());
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let path = self.file(tenant);
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(all).map_err(|e| SecretError::Io(e.to_string()))?;
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    fn aad(tenant: &str, name: &str) -> Vec<u8> {
        format!("{tenant}\n{name}").into_bytes()
    }

    /// Sets (or replaces) `tenant`'s secret `name`.
    pub fn set(&self, tenant: &str, name: &str, value: &str) -> Result<(), SecretError> {
        let key = self.key.as_ref().ok_or(SecretError::Disabled)?;
        if !valid_secret_name(name) {
            return Err(SecretError::Invalid(format!(
                "secret name {name:?} is not valid: A-Z, 0-9 and _, starting with a letter, at most 64"
            )));
        }
        if value.is_empty() || value.len() > MAX_VALUE_BYTES {
            return Err(SecretError::Invalid(format!(
                "a secret's value is 1 to {MAX_VALUE_BYTES} bytes (got {})",
                value.len()
            )));
        }
        if value.chars().any(char::is_control) {
            return Err(SecretError::Invalid(
                "a secret's value may not hold control characters (it goes into headers)".into(),
            ));
        }
        let _w = self
            .writing
            .lock()
            .map_err(|_| SecretError::Io("a writer failed".into()))?;
        let mut all = self.read(tenant)?;
        if !all.contains_key(name) && all.len() >= MAX_SECRETS {
            return Err(SecretError::Invalid(format!(
                "a tenant keeps at most {MAX_SECRETS} secrets; delete one first"
            )));
        }
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| SecretError::Io("no randomness for a nonce".into()))?;
        let mut data = Zeroizing::new(value.as_bytes().to_vec());
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(Self::aad(tenant, name)),
            &mut *data,
        )
        .map_err(|_| SecretError::Io("sealing failed".into()))?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&data);
        all.insert(
            name.to_string(),
            Sealed {
                sealed: hex::encode(sealed),
                updated_at: Utc::now(),
            },
        );
        self.write(tenant, &all)
    }

    /// `tenant`'s secrets, by name.
    pub fn names(&self, tenant: &str) -> Result<Vec<SecretName>, SecretError> {
        Ok(self
            .read(tenant)?
            .into_iter()
            .map(|(name, s)| SecretName {
                name,
                updated_at: s.updated_at,
            })
            .collect())
    }

    /// Deletes `tenant`'s secret `name`.
    pub fn delete(&self, tenant: &str, name: &str) -> Result<(), SecretError> {
        let _w = self
            .writing
            .lock()
            .map_err(|_| SecretError::Io("a writer failed".into()))?;
        let mut all = self.read(tenant)?;
        if all.remove(name).is_none() {
            return Err(SecretError::NotFound(name.to_string()));
        }
        self.write(tenant, &all)
    }

    fn open(&self, tenant: &str, name: &str) -> Option<Zeroizing<String>> {
        let key = self.key.as_ref()?;
        let all = self.read(tenant).ok()?;
        let sealed = hex::decode(&all.get(name)?.sealed).ok()?;
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, data) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = Zeroizing::new(data.to_vec());
        let plain = key
            .open_in_place(nonce, Aad::from(Self::aad(tenant, name)), &mut data)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok().map(Zeroizing::new)
    }
}

impl SecretSource for Vault {
    fn secret(&self, tenant: &str, name: &str) -> Option<Zeroizing<String>> {
        self.open(tenant, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_sealed_at_rest_and_open_only_in_their_slot() {
        let dir = tempfile::tempdir().expect("dir");
        let key = SecretsKey::from_hex(&"ab".repeat(32)).expect("key");
        let v = Vault::new(dir.path().to_path_buf(), Some(&key)).expect("vault");
        v.set("acme", "API_KEY", "sk_live_plaintext").expect("set");
        assert_eq!(
            v.secret("acme", "API_KEY").as_deref().map(String::as_str),
            Some("sk_live_plaintext")
        );
        assert!(v.secret("other", "API_KEY").is_none());
        let on_disk = std::fs::read_to_string(v.file("acme")).expect("file");
        assert!(!on_disk.contains("sk_live_plaintext"), "{on_disk}");
        // Moved to another name, a sealed value does not open.
        let mut all = v.read("acme").expect("read");
        let sealed = all.remove("API_KEY").expect("sealed");
        all.insert("OTHER".into(), sealed);
        v.write("acme", &all).expect("write");
        assert!(v.secret("acme", "OTHER").is_none());
        // Another key opens nothing.
        let other = SecretsKey::from_hex(&"cd".repeat(32)).expect("key");
        v.set("acme", "API_KEY", "x").expect("set");
        let w = Vault::new(dir.path().to_path_buf(), Some(&other)).expect("vault");
        assert!(w.secret("acme", "API_KEY").is_none());
        assert!(SecretsKey::from_hex("short").is_err());
        assert!(format!("{key:?}") == "SecretsKey(..)");
    }
}

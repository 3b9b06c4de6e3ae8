//! Module bytes kept in PostgreSQL for every host ([`crate::sandbox::SharedModules`]): an
//! upload through any host stores its component there by content hash, and a host that
//! has no copy fetches it and compiles its own artifact. With sled (one host) there is
//! nothing to share and the sandbox is given none.

use std::sync::Arc;

use stagecraft_store_pg::PgBackend;

use crate::sandbox::SharedModules;

pub struct PgModules(pub Arc<PgBackend>);

impl SharedModules for PgModules {
    fn fetch(&self, hash: &str) -> Result<Option<Vec<u8>>, String> {
        self.0.module_bytes(hash).map_err(|e| e.to_string())
    }

    fn keep(&self, tenant: &str, hash: &str, bytes: &[u8]) -> Result<(), String> {
        self.0
            .put_module_bytes(tenant, hash, bytes)
            .map_err(|e| e.to_string())
    }
}

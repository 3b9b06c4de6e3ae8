//! Module components by content hash, shared by every host on the database: kept once per
//! tenant when uploaded, fetched by any host that has no copy yet (it compiles its own
//! artifact), dropped with the tenant's last version that has them (`ops`).

use stagecraft_store::{Durability, Result};

use crate::blocking::off_runtime;
use crate::sql::db;
use crate::PgBackend;

impl PgBackend {
    /// Keeps `bytes` under (tenant, hash); nothing happens when they are there already.
    pub fn put_module_bytes(&self, tenant: &str, hash: &str, bytes: &[u8]) -> Result<()> {
        off_runtime(|| {
            self.transact(Durability::Durable, |tx| {
                tx.execute(
                    "INSERT INTO module_blobs (tenant, hash, bytes) VALUES ($1, $2, $3) \
                     ON CONFLICT (tenant, hash) DO NOTHING",
                    &[&tenant, &hash, &bytes],
                )?;
                Ok(())
            })
        })
    }

    /// The bytes stored under `hash` (in any tenant: the hash names the content).
    pub fn module_bytes(&self, hash: &str) -> Result<Option<Vec<u8>>> {
        off_runtime(|| {
            let mut c = self.conn()?;
            let row = c
                .query_opt(
                    "SELECT bytes FROM module_blobs WHERE hash = $1 LIMIT 1",
                    &[&hash],
                )
                .map_err(db)?;
            Ok(row.map(|r| r.get(0)))
        })
    }
}

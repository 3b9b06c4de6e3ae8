//! Start-up glue: open the store, bootstrap a fresh server, assemble the shared state.

use std::sync::Arc;

use anyhow::Context;

use crate::automation::Automation;
use crate::config::Config;
use crate::crm::tenants;
use crate::delivery::Delivery;
use crate::http::AppState;
use crate::sandbox::Sandbox;
use crate::store::Store;
use stagecraft_store_pg::PgBackend;

/// A started host: its shared state, and the admin key if this start created the first
/// tenant.
pub struct Started {
    pub state: AppState,
    pub bootstrap_key: Option<String>,
}

/// The store the config names: PostgreSQL when it gives a database (with the backend, to
/// share module bytes through), else sled in the data dir.
fn open_store(config: &Config) -> anyhow::Result<(Store, Option<Arc<PgBackend>>)> {
    match &config.database {
        Some(url) => {
            let backend = Arc::new(
                PgBackend::connect(url, Default::default())
                    .context("opening the PostgreSQL database")?,
            );
            tracing::info!("storage: PostgreSQL");
            Ok((
                Store::new(backend.clone()).with_leases(config.leases),
                Some(backend),
            ))
        }
        None => Store::open(&config.data_dir.join("db"))
            .map(|s| (s.with_leases(config.leases), None))
            .with_context(|| format!("opening the store in {}", config.data_dir.display())),
    }
}

/// Opens (or creates) the data dir and prepares everything `http::serve` needs.
pub fn start(config: Config, bootstrap_key: Option<&str>) -> anyhow::Result<Started> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let (store, pg) = open_store(&config)?;
    let bootstrap_key = tenants::bootstrap(&store, bootstrap_key)?;
    let sandbox = Sandbox::new(&config.data_dir.join("modules"), config.limits.clone())?;
    sandbox.set_address_guard(Arc::new(crate::delivery::guard::Guard::new(
        config.delivery.allow_internal_destinations,
    )))?;
    let secrets = Arc::new(
        crate::secrets::Vault::new(config.data_dir.join("secrets"), config.secrets_key.as_ref())
            .map_err(anyhow::Error::msg)?,
    );
    sandbox.set_secret_source(secrets.clone());
    if let Some(pg) = pg.clone() {
        sandbox.share_modules(Arc::new(crate::shared_modules::PgModules(pg)));
    }
    let counted = store
        .count_stored_modules(|hash| sandbox.artifact_size(hash))
        .context("counting the module versions stored by an older version")?;
    if counted > 0 {
        tracing::info!(
            versions = counted,
            "counted module versions stored before the module quota"
        );
    }
    let automation = Automation::new(store.clone(), sandbox.clone(), config.automation.clone());
    let delivery = Delivery::new(store.clone(), config.delivery.clone())
        .context("building the delivery HTTP client")?;
    let pool = crate::http::Pool::new(config.store_pool.clone());
    let automation_pool =
        crate::http::Pool::new(crate::http::PoolConfig::automation(&config.limits));
    Ok(Started {
        state: AppState {
            store,
            sandbox,
            automation,
            delivery,
            config: Arc::new(config),
            replays: Arc::default(),
            pool,
            automation_pool,
            secrets,
            shared_db: pg,
        },
        bootstrap_key,
    })
}

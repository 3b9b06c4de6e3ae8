//! `stagecraft admin-key`: the way back from a lost admin key. Works offline on the data dir
//! of a stopped server (the running server holds sled's lock, and is refused clearly): adds
//! a new admin key to a tenant and prints its secret once. Old keys keep working; revoke the
//! lost one afterwards with `stagecraft keys revoke`.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use super::serve::shell_word;
use super::{table, CliError};
use crate::crm::{tenants, CrmError};
use crate::store::Store;

#[derive(Args)]
pub struct AdminKeyArgs {
    /// The data dir of the stopped server, as given to `serve --data-dir`.
    #[arg(long, default_value = "./stagecraft-data")]
    data_dir: PathBuf,
    /// The tenant (default: `default`, else the only one).
    #[arg(long)]
    tenant: Option<String>,
    /// Make it a server-operator key too (it may create tenants), as the first start's key is.
    #[arg(long)]
    operator: bool,
    /// Print `{"tenant", "key", "secret"}` as JSON.
    #[arg(long)]
    json: bool,
}

/// Issues the key, or says why not; writes nothing when it refuses.
pub fn run(a: AdminKeyArgs) -> Result<(), CliError> {
    let dir = &a.data_dir;
    let db = dir.join("db");
    // sled keeps its data in <db>/db; without it this is not a server's data dir, and
    // opening the store would create an empty one.
    let db_file = db.join("db");
    if !db_file.is_file() {
        return Err(CliError::Failed(format!(
            "no Stagecraft data in {} (no {}): give the --data-dir the server runs with; nothing was written",
            dir.display(),
            db_file.display()
        )));
    }
    refuse_if_running(dir, &db_file)?;
    let store = Store::open(&db).map_err(|e| {
        if e.to_string().contains("could not acquire lock") {
            in_use(dir)
        } else {
            CliError::Failed(format!("opening the store in {}: {e}", dir.display()))
        }
    })?;
    let (tenant, key, secret) = tenants::recovery_key(&store, a.tenant.as_deref(), a.operator)
        .map_err(|e| match e {
            CrmError::NotFound(what) if what == "a tenant" => CliError::Failed(format!(
                "{} has no tenant yet, so there is no admin key to recover: start the server \
                 (stagecraft serve --data-dir {}); its first start prints the admin key",
                dir.display(),
                shell_word(dir)
            )),
            CrmError::NotFound(what) => CliError::Failed(format!("no {what} in {}", dir.display())),
            CrmError::Invalid(m) => CliError::Usage(format!("{}: {m}", dir.display())),
            other => CliError::Failed(format!("{}: {other}", dir.display())),
        })?;
    store
        .flush()
        .map_err(|e| CliError::Failed(format!("writing {}: {e}", dir.display())))?;
    if a.json {
        table::print_json(&json!({"tenant": tenant, "key": key, "secret": secret}));
        return Ok(());
    }
    let kind = if a.operator {
        "admin and server-operator key"
    } else {
        "admin key"
    };
    outln!("admin key: {secret}");
    outln!(
        "a new {kind} ({}, \"{}\") for tenant {tenant}; shown once, only its hash is stored.",
        key.id,
        key.name
    );
    outln!(
        "Start the server, then list the old keys with `stagecraft keys` and revoke the lost one \
         with `stagecraft keys revoke KEY_ID`."
    );
    Ok(())
}

/// Refuses while a server holds the store's lock (sled takes an exclusive lock on its file).
fn refuse_if_running(dir: &Path, db_file: &Path) -> Result<(), CliError> {
    let file = File::options()
        .read(true)
        .write(true)
        .open(db_file)
        .map_err(|e| CliError::Failed(format!("{}: {e}", db_file.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(()), // released when `file` is dropped, before the store opens it
        Err(TryLockError::WouldBlock) => Err(in_use(dir)),
        Err(TryLockError::Error(e)) => Err(CliError::Failed(format!(
            "{}: cannot lock: {e}",
            db_file.display()
        ))),
    }
}

fn in_use(dir: &Path) -> CliError {
    CliError::Failed(format!(
        "{} is in use by a running server: stop it first (admin-key changes the data dir \
         offline); nothing was written",
        dir.display()
    ))
}

//! `stagecraft migrate --from DATA_DIR --to postgres://…`: moving from one host on sled to
//! many hosts on PostgreSQL. Copies every tenant of a stopped server's data dir into the
//! database (through the store's seam: `Store::copy_into`), with a progress bar on stderr,
//! then counts every noun on both sides and fails unless they agree. A database that
//! already holds tenants is refused unless `--force` is given. The data dir is only read.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::CliError;
use crate::store::Store;
use stagecraft_store_pg::PgBackend;

#[derive(Args)]
pub struct MigrateArgs {
    /// The data dir of the stopped server, as given to `serve --data-dir`.
    #[arg(long)]
    from: PathBuf,
    /// The PostgreSQL database to copy into (postgres://user:password@host:port/database).
    #[arg(long)]
    to: String,
    /// Copy into a database that already holds tenants (one of the same id stops the copy).
    #[arg(long)]
    force: bool,
}

/// Copies, checks the counts, and prints what was copied.
pub async fn run(a: MigrateArgs) -> Result<(), CliError> {
    if !(a.to.starts_with("postgres://") || a.to.starts_with("postgresql://")) {
        return Err(CliError::Usage(
            "--to: expected a PostgreSQL URL: postgres://user:password@host:port/database".into(),
        ));
    }
    tokio::task::spawn_blocking(move || copy(&a))
        .await
        .map_err(|e| CliError::Failed(format!("the copy stopped: {e}")))?
}

fn copy(a: &MigrateArgs) -> Result<(), CliError> {
    let dir = &a.from;
    let db_file = dir.join("db").join("db");
    if !db_file.is_file() {
        return Err(CliError::Failed(format!(
            "no Stagecraft data in {} (no {}): give the --data-dir the server ran with",
            dir.display(),
            db_file.display()
        )));
    }
    let source = Store::open(&dir.join("db")).map_err(|e| {
        if e.to_string().contains("could not acquire lock") {
            CliError::Failed(format!(
                "{} is in use by a running server: stop it first; nothing was copied",
                dir.display()
            ))
        } else {
            CliError::Failed(format!("opening {}: {e}", dir.display()))
        }
    })?;
    let pg = PgBackend::connect(&a.to, Default::default())
        .map_err(|e| CliError::Failed(format!("opening the PostgreSQL database: {e}")))?;
    let target = Store::new(Arc::new(pg));
    let failed = |what: &str, e: crate::store::StoreError| CliError::Failed(format!("{what}: {e}"));
    if !a.force
        && !target
            .is_empty()
            .map_err(|e| failed("reading the target", e))?
    {
        return Err(CliError::Failed(
            "the target database already holds tenants: give an empty database, or pass --force \
             to copy into it anyway; nothing was copied"
                .into(),
        ));
    }
    let before = source
        .count_everything()
        .map_err(|e| failed("counting the source", e))?;
    let total: u64 = before.values().sum();
    let bar = progress_bar(total);
    let modules = dir.join("modules");
    let component = |hash: &str| std::fs::read(modules.join(format!("{hash}.wasm"))).ok();
    source
        .copy_into(&target, &component, &mut |noun, n| {
            bar.set_message(noun.to_string());
            bar.inc(n);
        })
        .map_err(|e| failed("copying", e))?;
    bar.finish_and_clear();
    let after = target
        .count_everything()
        .map_err(|e| failed("counting the target", e))?;
    let mut wrong = Vec::new();
    for ((tenant, noun), n) in &before {
        let got = after.get(&(tenant.clone(), *noun)).copied().unwrap_or(0);
        if got != *n {
            wrong.push(format!(
                "{tenant} {noun}: {n} in the data dir, {got} in PostgreSQL"
            ));
        }
    }
    if !wrong.is_empty() {
        return Err(CliError::Failed(format!(
            "the counts differ after the copy:\n  {}",
            wrong.join("\n  ")
        )));
    }
    summary(dir, &before);
    Ok(())
}

/// A bar on stderr (hidden when stderr is not a terminal: then one line per noun is
/// printed instead, by `summary`).
fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} rows ({percent}%) {msg}")
    {
        bar.set_style(style);
    }
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
        eprintln!("copying {total} rows");
    }
    bar
}

fn summary(dir: &Path, counts: &crate::store::CopyCounts) {
    let mut tenants: Vec<&str> = counts.keys().map(|(t, _)| t.as_str()).collect();
    tenants.dedup();
    for t in &tenants {
        let line: Vec<String> = crate::store::NOUNS
            .iter()
            .map(|noun| {
                let n = counts.get(&(t.to_string(), *noun)).copied().unwrap_or(0);
                format!("{n} {noun}")
            })
            .collect();
        outln!("tenant {t}: {}", line.join(", "));
    }
    outln!(
        "copied {} tenant(s) from {}; the counts match. Start hosts with --database.",
        tenants.len(),
        dir.display()
    );
}

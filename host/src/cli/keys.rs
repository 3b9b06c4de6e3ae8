//! `stagecraft keys`: the tenant's API keys (admin key) — list them (never their secrets),
//! create one with a role (and optionally the CRM user it acts for), revoke one. A new key's
//! secret is printed once; only its hash is stored.

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::client::{typed, Client};
use super::{table, CliError, Conn};
use crate::model::ApiKey;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: Option<KeysCommand>,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print its secret (once).
    Create {
        /// `admin` (everything in the tenant), `developer` (modules, runs, dry-runs) or
        /// `agent` (records).
        #[arg(long, value_parser = ["admin", "developer", "agent"])]
        role: String,
        /// What the key is for, e.g. "ci" (default: "<role> key").
        #[arg(long)]
        name: Option<String>,
        /// The CRM user the key acts for, e.g. `ann` (an agent's own key).
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a key by its id (from `stagecraft keys`); it stops working at once.
    Revoke {
        /// The key's id (`key_…`), not its secret.
        id: String,
    },
}

pub async fn run(client: &Client, a: KeysArgs) -> Result<(), CliError> {
    let json = a.conn.json;
    match a.command {
        None => list(client, json).await,
        Some(KeysCommand::Create { role, name, user }) => {
            let mut body = Map::new();
            body.insert(
                "name".into(),
                json!(name.unwrap_or_else(|| format!("{role} key"))),
            );
            body.insert("role".into(), json!(role));
            if let Some(u) = user {
                body.insert("user".into(), json!(u));
            }
            let v = client.post(&["v1", "keys"], &Value::Object(body)).await?;
            if json {
                table::print_json(&v);
                return Ok(());
            }
            let key: ApiKey = typed(&v, "key")?;
            let secret = v["secret"].as_str().unwrap_or_default();
            outln!("secret: {secret}");
            outln!(
                "a new {} key {} (\"{}\"{}) for tenant {}; shown once, only its hash is stored.",
                key.role.as_str(),
                key.id,
                key.name,
                key.user
                    .as_deref()
                    .map(|u| format!(", acting for {u}"))
                    .unwrap_or_default(),
                key.tenant
            );
            Ok(())
        }
        Some(KeysCommand::Revoke { id }) => {
            let v = client.delete(&["v1", "keys", &id]).await?;
            if json {
                table::print_json(&v);
            } else {
                outln!("revoked {id}");
            }
            Ok(())
        }
    }
}

async fn list(client: &Client, json: bool) -> Result<(), CliError> {
    let v = client.get(&["v1", "keys"], &[]).await?;
    if json {
        table::print_json(&v);
        return Ok(());
    }
    let mut keys: Vec<ApiKey> = typed(&v["keys"], "key list")?;
    keys.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    let mut t = table::new(&["KEY", "ROLE", "NAME", "USER", "CREATED"]);
    for k in &keys {
        let role = if k.operator {
            format!("{} + operator", k.role.as_str())
        } else {
            k.role.as_str().to_string()
        };
        t.add_row([
            k.id.clone(),
            role,
            table::clip(&k.name, 40),
            k.user.clone().unwrap_or_else(|| "-".into()),
            table::time(&k.created_at),
        ]);
    }
    table::print(&t, "no keys");
    Ok(())
}

//! `stagecraft pipelines`: the tenant's pipelines and their stages, and `create` for a new
//! one with the default stages of its kind — e.g. a pipeline of its own for a rule being
//! tried, away from the bindings on `leads` (the demo's `lead-scoring` runs inline there).

use clap::{Args, Subcommand};
use serde_json::json;

use super::client::{typed, Client};
use super::{table, CliError, Conn};
use crate::model::pipeline::default_stages;
use crate::model::{Pipeline, PipelineKind, StageSemantic};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct PipelinesArgs {
    #[command(subcommand)]
    command: Option<PipelinesCommand>,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Subcommand)]
enum PipelinesCommand {
    /// Create a pipeline (admin key) with the default stages of its kind (leads: new,
    /// contacted, qualified, converted, disqualified; deals: discovery, proposal,
    /// negotiation, won, lost). Change the stages over the API (`PATCH /v1/pipelines/{id}`).
    Create {
        /// Its id, e.g. `qualifying`: letters, digits, `-`, `_`.
        id: String,
        /// Its display name (default: the id).
        #[arg(long)]
        name: Option<String>,
        /// `lead` or `deal`.
        #[arg(long, default_value = "lead", value_parser = ["lead", "deal"])]
        kind: String,
    },
}

pub async fn run(client: &Client, a: PipelinesArgs) -> Result<(), CliError> {
    let json = a.conn.json;
    let Some(PipelinesCommand::Create { id, name, kind }) = a.command else {
        let v = client.get(&["v1", "pipelines"], &[]).await?;
        if json {
            table::print_json(&v);
            return Ok(());
        }
        let pipelines: Vec<Pipeline> = typed(&v["pipelines"], "pipeline list")?;
        let mut t = table::new(&["PIPELINE", "NAME", "KIND", "STAGES"]);
        for p in &pipelines {
            t.add_row([
                p.id.clone(),
                p.name.clone(),
                kind_name(p.kind).into(),
                stages(p),
            ]);
        }
        table::print(&t, "no pipelines");
        return Ok(());
    };
    let kind = if kind == "deal" {
        PipelineKind::Deal
    } else {
        PipelineKind::Lead
    };
    let body = json!({
        "id": id,
        "name": name.unwrap_or_else(|| id.clone()),
        "kind": kind,
        "stages": default_stages(kind),
    });
    let v = client.post(&["v1", "pipelines"], &body).await?;
    if json {
        table::print_json(&v);
        return Ok(());
    }
    let p: Pipeline = typed(&v, "pipeline")?;
    outln!(
        "created {} pipeline {}: {}",
        kind_name(p.kind),
        p.id,
        stages(&p)
    );
    Ok(())
}

fn kind_name(k: PipelineKind) -> &'static str {
    match k {
        PipelineKind::Lead => "lead",
        PipelineKind::Deal => "deal",
    }
}

/// `new → contacted → … → converted (won) → disqualified (lost)`.
fn stages(p: &Pipeline) -> String {
    p.stages
        .iter()
        .map(|s| match s.semantic {
            StageSemantic::Won if s.id != "won" => format!("{} (won)", s.id),
            StageSemantic::Lost if s.id != "lost" => format!("{} (lost)", s.id),
            _ => s.id.clone(),
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

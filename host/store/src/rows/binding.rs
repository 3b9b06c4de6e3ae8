//! The binding row: triggers, mode, config (JSON text) and grants.

use serde::{Deserialize, Serialize};
use stagecraft_model::{Binding, Grants, HttpGrant, Mode, Trigger};
use stagecraft_rules::field::Kind;
use stagecraft_rules::Action;

use super::outbox::ChannelRow;
use super::{stored_row, JsonText, RowError, Ts};

/// Run modes (append only).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) enum ModeRow {
    Inline,
    Background,
}

impl From<Mode> for ModeRow {
    fn from(m: Mode) -> ModeRow {
        match m {
            Mode::Inline => ModeRow::Inline,
            Mode::Background => ModeRow::Background,
        }
    }
}

impl From<ModeRow> for Mode {
    fn from(m: ModeRow) -> Mode {
        match m {
            ModeRow::Inline => Mode::Inline,
            ModeRow::Background => Mode::Background,
        }
    }
}

/// When a binding runs (append only). Each carries its delay in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum TriggerRow {
    Created(Option<u64>),
    Updated(Vec<String>, Option<u64>),
    EnteredStage(String, Option<u64>),
    StageChanged(Option<u64>),
    Assigned(Option<u64>),
    Deleted(Option<u64>),
    Inbound(String, Option<u64>),
    /// Title prefix, tag, delay.
    TaskCompleted(Option<String>, Option<String>, Option<u64>),
    /// Title prefix, tag, delay.
    TaskOverdue(Option<String>, Option<String>, Option<u64>),
}

/// Granted actions (append only).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum ActionRow {
    CreateLead,
    CreateContact,
    CreateCompany,
    CreateDeal,
    CreateTask,
    CompleteTask,
    Comment,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct GrantsRow {
    fields: Vec<String>,
    channels: Vec<ChannelRow>,
    backward: bool,
    http_destinations: Vec<String>,
    http_allow_http: bool,
    http_secrets: Vec<String>,
    actions: Vec<ActionRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct BindingRow {
    id: String,
    pipeline: String,
    module: String,
    version: u32,
    triggers: Vec<TriggerRow>,
    mode: ModeRow,
    order: i32,
    config: JsonText,
    grants: GrantsRow,
    enabled: bool,
    revision: u64,
    created_at: Ts,
    updated_at: Ts,
}

stored_row!(BindingRow => "binding", 1);

impl From<&Trigger> for TriggerRow {
    fn from(t: &Trigger) -> TriggerRow {
        match t.clone() {
            Trigger::Created { delay_seconds } => TriggerRow::Created(delay_seconds),
            Trigger::Updated {
                fields,
                delay_seconds,
            } => TriggerRow::Updated(fields, delay_seconds),
            Trigger::EnteredStage {
                stage,
                delay_seconds,
            } => TriggerRow::EnteredStage(stage, delay_seconds),
            Trigger::StageChanged { delay_seconds } => TriggerRow::StageChanged(delay_seconds),
            Trigger::Assigned { delay_seconds } => TriggerRow::Assigned(delay_seconds),
            Trigger::Deleted { delay_seconds } => TriggerRow::Deleted(delay_seconds),
            Trigger::Inbound {
                name,
                delay_seconds,
            } => TriggerRow::Inbound(name, delay_seconds),
            Trigger::TaskCompleted {
                title_prefix,
                tag,
                delay_seconds,
            } => TriggerRow::TaskCompleted(title_prefix, tag, delay_seconds),
            Trigger::TaskOverdue {
                title_prefix,
                tag,
                delay_seconds,
            } => TriggerRow::TaskOverdue(title_prefix, tag, delay_seconds),
        }
    }
}

impl From<TriggerRow> for Trigger {
    fn from(t: TriggerRow) -> Trigger {
        match t {
            TriggerRow::Created(delay_seconds) => Trigger::Created { delay_seconds },
            TriggerRow::Updated(fields, delay_seconds) => Trigger::Updated {
                fields,
                delay_seconds,
            },
            TriggerRow::EnteredStage(stage, delay_seconds) => Trigger::EnteredStage {
                stage,
                delay_seconds,
            },
            TriggerRow::StageChanged(delay_seconds) => Trigger::StageChanged { delay_seconds },
            TriggerRow::Assigned(delay_seconds) => Trigger::Assigned { delay_seconds },
            TriggerRow::Deleted(delay_seconds) => Trigger::Deleted { delay_seconds },
            TriggerRow::Inbound(name, delay_seconds) => Trigger::Inbound {
                name,
                delay_seconds,
            },
            TriggerRow::TaskCompleted(title_prefix, tag, delay_seconds) => Trigger::TaskCompleted {
                title_prefix,
                tag,
                delay_seconds,
            },
            TriggerRow::TaskOverdue(title_prefix, tag, delay_seconds) => Trigger::TaskOverdue {
                title_prefix,
                tag,
                delay_seconds,
            },
        }
    }
}

impl From<Action> for ActionRow {
    fn from(a: Action) -> ActionRow {
        match a {
            Action::Create(Kind::Lead) => ActionRow::CreateLead,
            Action::Create(Kind::Contact) => ActionRow::CreateContact,
            Action::Create(Kind::Company) => ActionRow::CreateCompany,
            Action::Create(Kind::Deal) => ActionRow::CreateDeal,
            Action::CreateTask => ActionRow::CreateTask,
            Action::CompleteTask => ActionRow::CompleteTask,
            Action::Comment => ActionRow::Comment,
        }
    }
}

impl From<ActionRow> for Action {
    fn from(a: ActionRow) -> Action {
        match a {
            ActionRow::CreateLead => Action::Create(Kind::Lead),
            ActionRow::CreateContact => Action::Create(Kind::Contact),
            ActionRow::CreateCompany => Action::Create(Kind::Company),
            ActionRow::CreateDeal => Action::Create(Kind::Deal),
            ActionRow::CreateTask => Action::CreateTask,
            ActionRow::CompleteTask => Action::CompleteTask,
            ActionRow::Comment => Action::Comment,
        }
    }
}

impl From<&Grants> for GrantsRow {
    fn from(g: &Grants) -> GrantsRow {
        GrantsRow {
            fields: g.fields.clone(),
            channels: g.channels.iter().map(|c| (*c).into()).collect(),
            backward: g.backward,
            http_destinations: g.http.destinations.clone(),
            http_allow_http: g.http.allow_http,
            http_secrets: g.http.secrets.clone(),
            actions: g.actions.iter().map(|a| (*a).into()).collect(),
        }
    }
}

impl From<GrantsRow> for Grants {
    fn from(g: GrantsRow) -> Grants {
        Grants {
            fields: g.fields,
            channels: g.channels.into_iter().map(Into::into).collect(),
            backward: g.backward,
            http: HttpGrant {
                destinations: g.http_destinations,
                allow_http: g.http_allow_http,
                secrets: g.http_secrets,
            },
            actions: g.actions.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<&Binding> for BindingRow {
    fn from(b: &Binding) -> BindingRow {
        BindingRow {
            id: b.id.clone(),
            pipeline: b.pipeline.clone(),
            module: b.module.clone(),
            version: b.version,
            triggers: b.triggers.iter().map(TriggerRow::from).collect(),
            mode: b.mode.into(),
            order: b.order,
            config: JsonText::of(&b.config),
            grants: (&b.grants).into(),
            enabled: b.enabled,
            revision: b.revision,
            created_at: (&b.created_at).into(),
            updated_at: (&b.updated_at).into(),
        }
    }
}

impl TryFrom<BindingRow> for Binding {
    type Error = RowError;

    fn try_from(b: BindingRow) -> Result<Binding, RowError> {
        Ok(Binding {
            id: b.id,
            pipeline: b.pipeline,
            module: b.module,
            version: b.version,
            triggers: b.triggers.into_iter().map(Into::into).collect(),
            mode: b.mode.into(),
            order: b.order,
            config: b.config.parse()?,
            grants: b.grants.into(),
            enabled: b.enabled,
            revision: b.revision,
            created_at: b.created_at.get()?,
            updated_at: b.updated_at.get()?,
        })
    }
}

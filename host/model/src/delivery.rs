//! Delivery settings and records: where each channel sends, what each attempt did, and the
//! in-app notifications the `notify` channel produces.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Plain SMTP (only for relays on a trusted network).
    None,
    /// Plain connection upgraded with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    #[schema(min_length = 1, max_length = 253, pattern = "\\S")]
    pub host: String,
    #[schema(minimum = 1)]
    pub port: u16,
    pub tls: TlsMode,
    #[schema(max_length = 256)]
    pub username: Option<String>,
    /// Write-only: the API never returns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 1024)]
    pub password: Option<String>,
    /// The From address, e.g. `Acme CRM <crm@acme.example>`.
    #[schema(max_length = 512)]
    pub from: String,
    /// Seconds one attempt may take, connection and lookup included (1-60; default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Hosts (or `host:port`) webhooks may go to; `*` allows any. Others are dead-lettered.
    /// At most 100 entries of at most 260 bytes each.
    #[schema(max_items = 100)]
    pub allowed_hosts: Vec<String>,
    /// Seconds one attempt may take (1-60; default 10). A receiver slower than this gets the
    /// message again on the retry: delivery is at-least-once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// The SMS provider's HTTP endpoint; messages are POSTed to it as JSON.
    #[schema(max_length = 2048, pattern = "^[Hh][Tt][Tt][Pp][Ss]?://")]
    pub url: String,
    /// Sent as `Authorization: Bearer …`. Write-only: the API never returns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 4096)]
    pub token: Option<String>,
    /// Seconds one attempt may take (1-60; default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
}

/// Where a tenant's messages go. A channel without a setting (here or on the server) keeps
/// its messages queued; `notify` needs none.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"webhook": {"allowed_hosts": ["hooks.example.com"]}}))]
pub struct ChannelConfig {
    pub email: Option<EmailConfig>,
    pub webhook: Option<WebhookConfig>,
    pub sms: Option<SmsConfig>,
}

impl ChannelConfig {
    /// The settings without their secrets, for API responses.
    pub fn redacted(&self) -> ChannelConfig {
        let mut c = self.clone();
        if let Some(e) = &mut c.email {
            e.password = None;
        }
        if let Some(s) = &mut c.sms {
            s.token = None;
        }
        c
    }
}

/// One delivery attempt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    /// HTTP status or SMTP reply code, when the other side answered.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// An in-app notification for a CRM user (the `notify` channel).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Notification {
    pub id: String,
    pub user: String,
    pub subject: String,
    pub body: String,
    pub record: Option<String>,
    pub created_at: DateTime<Utc>,
}

//! Email through an SMTP relay (lettre): TLS mode, credentials, and how SMTP replies map to
//! sent / retry / dead. The message id becomes the Message-ID, so receivers can de-duplicate.
//!
//! The relay is a tenant's choice, so its name is resolved here, through the destination
//! guard, and lettre is handed the checked address — it never resolves anything itself —
//! while TLS still verifies the certificate against the configured host name. The whole
//! exchange, lookup included, is bounded by the channel's timeout.

use std::net::SocketAddr;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::guard::{Guard, Unreachable};
use super::{status, Attempted};
use crate::model::delivery::{EmailConfig, TlsMode};
use crate::model::OutboxMessage;

pub async fn send(
    m: &OutboxMessage,
    cfg: &EmailConfig,
    guard: Guard,
    timeout: Duration,
) -> Attempted {
    let failed = |error: String| Attempted::Failed {
        status: None,
        error,
    };
    let from = match cfg.from.parse() {
        Ok(a) => a,
        Err(e) => {
            return failed(format!(
                "the configured From address {:?} is invalid: {e}",
                cfg.from
            ))
        }
    };
    let to = match m.to.parse() {
        Ok(a) => a,
        Err(e) => return failed(format!("{:?} is not an email address: {e}", m.to)),
    };
    let email = Message::builder()
        .from(from)
        .to(to)
        .subject(m.subject.clone())
        .message_id(Some(format!("<{}@stagecraft>", m.id)))
        .header(ContentType::TEXT_PLAIN)
        .body(m.body.clone());
    let email = match email {
        Ok(e) => e,
        Err(e) => return failed(format!("the email cannot be built: {e}")),
    };
    match tokio::time::timeout(timeout, relay(email, cfg, guard, timeout)).await {
        Ok(attempted) => attempted,
        Err(_) => Attempted::Retry {
            status: None,
            error: "timed out".into(),
            after: None,
        },
    }
}

/// Resolves the relay through the guard and sends to the first checked address that takes a
/// connection.
async fn relay(email: Message, cfg: &EmailConfig, guard: Guard, timeout: Duration) -> Attempted {
    let addrs = match guard.lookup(&cfg.host, cfg.port).await {
        Ok(a) => a,
        Err(Unreachable::Refused(r)) => {
            return Attempted::Failed {
                status: None,
                error: r.to_string(),
            }
        }
        Err(e @ Unreachable::Unresolved { .. }) => {
            return Attempted::Retry {
                status: None,
                error: e.to_string(),
                after: None,
            }
        }
    };
    let tls = match tls(cfg) {
        Ok(t) => t,
        Err(e) => {
            return Attempted::Failed {
                status: None,
                error: format!("the SMTP relay settings are unusable: {e}"),
            }
        }
    };
    let mut last = None;
    for addr in addrs {
        match send_to(addr, &email, cfg, tls.clone(), timeout).await {
            // Nothing was said yet: the next address cannot receive the mail twice.
            Err(e) if refused_connection(&e) => last = Some(e),
            Ok(resp) => {
                return Attempted::Sent {
                    status: Some(u16::from(resp.code())),
                }
            }
            Err(e) => return failed_smtp(&e),
        }
    }
    match last {
        Some(e) => failed_smtp(&e),
        None => Attempted::Retry {
            status: None,
            error: "no address to connect to".into(),
            after: None,
        },
    }
}

async fn send_to(
    addr: SocketAddr,
    email: &Message,
    cfg: &EmailConfig,
    tls: Tls,
    timeout: Duration,
) -> Result<lettre::transport::smtp::response::Response, lettre::transport::smtp::Error> {
    // An IP as the server: lettre's own lookup of it is a no-op.
    let mut builder =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
            .port(addr.port())
            .tls(tls)
            .timeout(Some(timeout));
    if let (Some(user), Some(pass)) = (&cfg.username, &cfg.password) {
        builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
    }
    builder.build().send(email.clone()).await
}

/// The TLS mode, verifying the certificate against the configured host name.
fn tls(cfg: &EmailConfig) -> Result<Tls, lettre::transport::smtp::Error> {
    Ok(match cfg.tls {
        TlsMode::None => Tls::None,
        TlsMode::Starttls => Tls::Required(TlsParameters::new(tls_name(&cfg.host))?),
        TlsMode::Tls => Tls::Wrapper(TlsParameters::new(tls_name(&cfg.host))?),
    })
}

/// The host as a certificate names it (an IPv6 literal without its brackets).
fn tls_name(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_string()
}

/// The connection was refused or unroutable: nothing reached the server.
fn refused_connection(e: &lettre::transport::smtp::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::NetworkUnreachable
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::AddrNotAvailable
            );
        }
        cur = err.source();
    }
    false
}

/// Permanent SMTP replies dead-letter; anything else is retried.
fn failed_smtp(e: &lettre::transport::smtp::Error) -> Attempted {
    let status = e.status().map(u16::from);
    let error = status::smtp(e);
    if e.is_permanent() {
        Attempted::Failed { status, error }
    } else {
        Attempted::Retry {
            status,
            error,
            after: None,
        }
    }
}

//! Email through an SMTP relay (lettre): TLS mode, credentials, and how SMTP replies map to
//! sent / retry / dead. The message id becomes the Message-ID, so receivers can de-duplicate.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::Attempted;
use crate::model::delivery::{EmailConfig, TlsMode};
use crate::model::OutboxMessage;

pub async fn send(m: &OutboxMessage, cfg: &EmailConfig, timeout: Duration) -> Attempted {
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
    let builder = match cfg.tls {
        TlsMode::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            &cfg.host,
        )),
        TlsMode::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host),
        TlsMode::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host),
    };
    let mut builder = match builder {
        Ok(b) => b.port(cfg.port).timeout(Some(timeout)),
        Err(e) => return failed(format!("the SMTP relay settings are unusable: {e}")),
    };
    if let (Some(user), Some(pass)) = (&cfg.username, &cfg.password) {
        builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
    }
    let transport = builder.build();
    match transport.send(email).await {
        Ok(resp) => Attempted::Sent {
            status: Some(u16::from(resp.code())),
        },
        Err(e) => {
            let status = e.status().map(u16::from);
            if e.is_permanent() {
                Attempted::Failed {
                    status,
                    error: format!("SMTP: {e}"),
                }
            } else {
                Attempted::Retry {
                    status,
                    error: format!("SMTP: {e}"),
                    after: None,
                }
            }
        }
    }
}

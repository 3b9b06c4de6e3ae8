//! Webhooks and SMS over HTTP: the signed envelope, the provider call, and how an HTTP answer
//! maps to sent / retry / dead. The client resolves names through the destination guard and
//! never follows redirects; IP literals (which skip the resolver) are checked here.

use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::guard::{Guard, Refused};
use super::{status, Attempted};
use crate::model::delivery::{SmsConfig, WebhookConfig};
use crate::model::OutboxMessage;

/// The header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "stagecraft-signature";

pub fn host_of(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    let host = u.host_str()?.to_string();
    Some(match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    })
}

/// `t=…,v1=…` for `body` at `t`.
pub fn signature(secret: &str, t: u64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(), // HMAC takes keys of any length
    };
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs the signed envelope to the message's URL, if the tenant's allow-list and the guard
/// let it go there.
pub async fn webhook(
    client: &reqwest::Client,
    guard: Guard,
    tenant: &str,
    m: &OutboxMessage,
    cfg: &WebhookConfig,
    secret: &str,
    timeout: Duration,
) -> Attempted {
    let url = match reqwest::Url::parse(&m.to) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => u,
        _ => {
            return Attempted::Failed {
                status: None,
                error: format!("{:?} is not an http(s) URL", m.to),
            }
        }
    };
    let host = host_of(url.as_str()).unwrap_or_default();
    let bare = url.host_str().unwrap_or_default();
    let allowed = cfg
        .allowed_hosts
        .iter()
        .any(|h| h == "*" || h == &host || h == bare);
    if !allowed {
        return Attempted::Failed {
            status: None,
            error: format!("webhooks to {host} are not allowed (webhook.allowed_hosts)"),
        };
    }
    if let Err(refused) = guard.check_host(bare) {
        return refused_attempt(refused);
    }
    let payload: Value = serde_json::from_str(&m.body).unwrap_or(Value::Null);
    let envelope = json!({
        "id": m.id,
        "tenant": tenant,
        "idempotency_key": m.idempotency_key,
        "record": m.record,
        "run": m.run,
        "subject": m.subject,
        "body": m.body,
        "payload": payload,
        "created_at": m.created_at,
    });
    let body = envelope.to_string().into_bytes();
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let request = client
        .post(url)
        .timeout(timeout)
        .header("content-type", "application/json")
        .header(SIGNATURE_HEADER, signature(secret, t, &body))
        .header("stagecraft-message-id", &m.id)
        .header(
            "idempotency-key",
            m.idempotency_key.as_deref().unwrap_or(&m.id),
        )
        .body(body);
    classify(request.send().await)
}

/// POSTs the message to the tenant's SMS provider, if the guard lets it go there.
pub async fn sms(
    client: &reqwest::Client,
    guard: Guard,
    tenant: &str,
    m: &OutboxMessage,
    cfg: &SmsConfig,
    timeout: Duration,
) -> Attempted {
    let url = match reqwest::Url::parse(&cfg.url) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => u,
        _ => {
            return Attempted::Failed {
                status: None,
                error: format!("the SMS provider URL {:?} is not an http(s) URL", cfg.url),
            }
        }
    };
    // The token goes nowhere the guard refuses: IP literals skip the resolver.
    if let Err(refused) = guard.check_host(url.host_str().unwrap_or_default()) {
        return refused_attempt(refused);
    }
    let mut request = client
        .post(url)
        .timeout(timeout)
        .header(
            "idempotency-key",
            m.idempotency_key.as_deref().unwrap_or(&m.id),
        )
        .json(&json!({"id": m.id, "tenant": tenant, "to": m.to, "body": m.body}));
    if let Some(token) = &cfg.token {
        request = request.bearer_auth(token);
    }
    classify(request.send().await)
}

fn refused_attempt(refused: Refused) -> Attempted {
    Attempted::Failed {
        status: None,
        error: refused.to_string(),
    }
}

/// 2xx sent; 429 and 5xx retry (honoring `Retry-After`); other statuses are final. What is
/// recorded is the status line or a short network error, never the reply's body: the other
/// side may be a service the tenant should not be able to read.
fn classify(result: reqwest::Result<reqwest::Response>) -> Attempted {
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            return match status::network(&e) {
                (error, true) => Attempted::Failed {
                    status: None,
                    error,
                },
                (error, false) => Attempted::Retry {
                    status: None,
                    error,
                    after: None,
                },
            }
        }
    };
    let code = resp.status();
    let after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(retry_after);
    // The body is dropped unread.
    drop(resp);
    let status = Some(code.as_u16());
    if code.is_success() {
        return Attempted::Sent { status };
    }
    let error = status::http(code);
    if code.as_u16() == 429 || code.is_server_error() {
        Attempted::Retry {
            status,
            error,
            after,
        }
    } else {
        Attempted::Failed { status, error }
    }
}

/// `Retry-After`: delay-seconds or an HTTP date.
fn retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v.trim()).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn signatures_cover_time_and_body() {
        let a = signature("s", 10, b"{}");
        assert!(a.starts_with("t=10,v1="));
        assert_ne!(a, signature("s", 11, b"{}"));
        assert_ne!(a, signature("s", 10, b"{ }"));
        assert_ne!(a, signature("x", 10, b"{}"));
    }
}

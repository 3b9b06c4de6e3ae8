//! What a tenant's channel settings may say, checked when they are saved (`PUT /v1/channels`)
//! so a mistake is a 422 naming it rather than a dead letter later: an http(s) SMS endpoint,
//! an SMTP host that is a host, a From address, a timeout within bounds, every text within
//! its length and the allowed hosts within their count — and no destination
//! the guard refuses as written (an internal IP literal, `localhost`). Names that resolve to
//! internal addresses can only be caught when they are resolved, at send time.

use std::time::Duration;

use super::guard::Guard;
use crate::model::ChannelConfig;

/// The longest a setting's text may be, in bytes. Settings are stored per tenant and read
/// for every delivery, so each has a size beyond which it cannot be a real setting: a DNS
/// name has at most 253 characters, an address on the SMTP envelope 256, a URL in practice
/// under 2 KiB; secrets get room for long provider keys and tokens (JWTs run to a few KiB).
/// The OpenAPI schema (`stagecraft_model::delivery`) states the same numbers.
pub mod max {
    /// `email.host`: a DNS name (253) or an IP literal.
    pub const HOST: usize = 253;
    /// `email.username`: often an address (254), sometimes a key.
    pub const USERNAME: usize = 256;
    /// `email.password`.
    pub const PASSWORD: usize = 1024;
    /// `email.from`: a display name and an address.
    pub const FROM: usize = 512;
    /// `sms.url`.
    pub const URL: usize = 2048;
    /// `sms.token`.
    pub const TOKEN: usize = 4096;
    /// One `webhook.allowed_hosts` entry: `host:port`, or `[IPv6]:port`.
    pub const ALLOWED_HOST: usize = 260;
    /// How many `webhook.allowed_hosts` entries (`*` allows any host).
    pub const ALLOWED_HOSTS: usize = 100;
}

/// The longest a channel may let one attempt take. A slot at the destination and a global
/// delivery permit are held that long, and shutdown may wait that long for an attempt.
pub const MAX_TIMEOUT_SECONDS: u32 = 60;

/// A setting that cannot be saved, named as `channel.field: problem`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Invalid {
    pub field: &'static str,
    pub problem: String,
}

fn invalid(field: &'static str, problem: impl Into<String>) -> Invalid {
    Invalid {
        field,
        problem: problem.into(),
    }
}

/// The timeout of one attempt on a channel: its own setting, else the server's default.
pub fn timeout(own: Option<u32>, default: Duration) -> Duration {
    match own {
        Some(s) => Duration::from_secs(u64::from(s.clamp(1, MAX_TIMEOUT_SECONDS))),
        None => default,
    }
}

/// Refuses text longer than `limit` bytes, naming the field.
fn length(field: &'static str, value: &str, limit: usize) -> Result<(), Invalid> {
    if value.len() > limit {
        return Err(invalid(
            field,
            format!("{} bytes is too long: at most {limit}", value.len()),
        ));
    }
    Ok(())
}

/// Every text setting within its length, and the allowed hosts within their count.
fn sizes(cfg: &ChannelConfig) -> Result<(), Invalid> {
    if let Some(e) = &cfg.email {
        length("email.host", &e.host, max::HOST)?;
        length(
            "email.username",
            e.username.as_deref().unwrap_or_default(),
            max::USERNAME,
        )?;
        length(
            "email.password",
            e.password.as_deref().unwrap_or_default(),
            max::PASSWORD,
        )?;
        length("email.from", &e.from, max::FROM)?;
    }
    if let Some(s) = &cfg.sms {
        length("sms.url", &s.url, max::URL)?;
        length(
            "sms.token",
            s.token.as_deref().unwrap_or_default(),
            max::TOKEN,
        )?;
    }
    if let Some(w) = &cfg.webhook {
        if w.allowed_hosts.len() > max::ALLOWED_HOSTS {
            return Err(invalid(
                "webhook.allowed_hosts",
                format!(
                    "{} entries is too many: at most {} (\"*\" allows any host)",
                    w.allowed_hosts.len(),
                    max::ALLOWED_HOSTS
                ),
            ));
        }
        for entry in &w.allowed_hosts {
            length("webhook.allowed_hosts", entry, max::ALLOWED_HOST)?;
        }
    }
    Ok(())
}

/// Checks settings before they are stored.
pub fn validate(cfg: &ChannelConfig, guard: Guard) -> Result<(), Invalid> {
    sizes(cfg)?;
    if let Some(e) = &cfg.email {
        if e.host.trim().is_empty() {
            return Err(invalid("email.host", "a host name or address is required"));
        }
        if e.port == 0 {
            return Err(invalid("email.port", "a port (1-65535) is required"));
        }
        let host = host_name(&e.host).ok_or_else(|| {
            invalid(
                "email.host",
                format!("{:?} is not a host name or address", e.host),
            )
        })?;
        reachable("email.host", &host, guard)?;
        if e.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid(
                "email.from",
                format!("{:?} is not an address", e.from),
            ));
        }
        check_timeout("email.timeout_seconds", e.timeout_seconds)?;
    }
    if let Some(s) = &cfg.sms {
        let host = match reqwest::Url::parse(&s.url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {
                u.host_str().map(str::to_string)
            }
            _ => None,
        };
        let host =
            host.ok_or_else(|| invalid("sms.url", format!("{:?} is not an http(s) URL", s.url)))?;
        reachable("sms.url", &host, guard)?;
        check_timeout("sms.timeout_seconds", s.timeout_seconds)?;
    }
    if let Some(w) = &cfg.webhook {
        for entry in w.allowed_hosts.iter().filter(|h| h.as_str() != "*") {
            let host = host_name(entry).ok_or_else(|| {
                invalid(
                    "webhook.allowed_hosts",
                    format!("{entry:?} is not a host or host:port"),
                )
            })?;
            reachable("webhook.allowed_hosts", &host, guard)?;
        }
        check_timeout("webhook.timeout_seconds", w.timeout_seconds)?;
    }
    Ok(())
}

/// `host` (or `host:port`) as a URL would read it — so `2130706433` and `0x7f.1` are seen as
/// the 127.0.0.1 they mean — or `None` when it is not a host at all.
fn host_name(host: &str) -> Option<String> {
    let host = host.trim();
    if let Some(ip) = super::guard::literal(host) {
        return Some(ip.to_string());
    }
    if host.is_empty()
        || host.contains(['/', '@', '?', '#', '\\'])
        || host.contains(char::is_whitespace)
    {
        return None;
    }
    let url = reqwest::Url::parse(&format!("http://{host}/")).ok()?;
    url.host_str().map(str::to_string)
}

fn reachable(field: &'static str, host: &str, guard: Guard) -> Result<(), Invalid> {
    guard.check_host(host).map_err(|r| {
        invalid(
            field,
            format!("{r}; this server delivers only to public addresses (serve --allow-internal-destinations opens internal ones)"),
        )
    })
}

fn check_timeout(field: &'static str, seconds: Option<u32>) -> Result<(), Invalid> {
    match seconds {
        Some(s) if !(1..=MAX_TIMEOUT_SECONDS).contains(&s) => Err(invalid(
            field,
            format!("{s} is out of range: 1 to {MAX_TIMEOUT_SECONDS} seconds"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(v: serde_json::Value) -> ChannelConfig {
        serde_json::from_value(v).expect("settings")
    }

    #[test]
    fn internal_destinations_as_written_are_refused_by_field() {
        let guard = Guard::new(false);
        let cases = [
            (
                serde_json::json!({"sms": {"url": "http://127.0.0.1:9/send"}}),
                "sms.url",
            ),
            (
                serde_json::json!({"sms": {"url": "http://[::1]/send"}}),
                "sms.url",
            ),
            (
                serde_json::json!({"sms": {"url": "http://2130706433/send"}}),
                "sms.url",
            ),
            (
                serde_json::json!({"sms": {"url": "https://localhost/send"}}),
                "sms.url",
            ),
            (
                serde_json::json!({"email": {"host": "127.0.0.1", "port": 25, "tls": "none", "from": "a@b.co"}}),
                "email.host",
            ),
            (
                serde_json::json!({"email": {"host": "::ffff:10.0.0.1", "port": 25, "tls": "none", "from": "a@b.co"}}),
                "email.host",
            ),
            (
                serde_json::json!({"email": {"host": "0x7f.1", "port": 25, "tls": "none", "from": "a@b.co"}}),
                "email.host",
            ),
            (
                serde_json::json!({"email": {"host": "localhost", "port": 25, "tls": "none", "from": "a@b.co"}}),
                "email.host",
            ),
            (
                serde_json::json!({"email": {"host": "smtp.example.com/x", "port": 25, "tls": "none", "from": "a@b.co"}}),
                "email.host",
            ),
            (
                serde_json::json!({"webhook": {"allowed_hosts": ["hooks.example.com", "169.254.169.254:80"]}}),
                "webhook.allowed_hosts",
            ),
            (
                serde_json::json!({"webhook": {"allowed_hosts": ["*"], "timeout_seconds": 0}}),
                "webhook.timeout_seconds",
            ),
            (
                serde_json::json!({"sms": {"url": "https://sms.example.com", "timeout_seconds": 61}}),
                "sms.timeout_seconds",
            ),
        ];
        for (cfg, field) in cases {
            let got = validate(&settings(cfg.clone()), guard)
                .err()
                .map(|e| e.field);
            assert_eq!(got, Some(field), "{cfg}");
        }
        let fine = settings(serde_json::json!({
            "sms": {"url": "https://sms.example.com/send", "timeout_seconds": 60},
            "email": {"host": "smtp.example.com", "port": 587, "tls": "starttls", "from": "a@b.co", "timeout_seconds": 1},
            "webhook": {"allowed_hosts": ["*", "hooks.example.com:8443", "93.184.216.34"]}
        }));
        assert_eq!(validate(&fine, guard), Ok(()));
        let loopback = settings(serde_json::json!({"sms": {"url": "http://127.0.0.1:9/send"}}));
        assert_eq!(validate(&loopback, Guard::new(true)), Ok(()));
    }

    #[test]
    fn every_text_setting_has_a_length_and_the_allowed_hosts_a_count() {
        let guard = Guard::new(false);
        let long = |n: usize| "a".repeat(n);
        let email = |field: &str, value: String| {
            let mut e = serde_json::json!({"host": "smtp.example.com", "port": 587,
                "tls": "starttls", "from": "crm@example.com"});
            e[field] = serde_json::json!(value);
            serde_json::json!({ "email": e })
        };
        // Each at its limit.
        let host = format!("{0}.{0}.{0}.{1}", long(63), long(61));
        let from = format!("{} <crm@example.com>", long(max::FROM - 18));
        let url = format!("https://sms.example.com/{}", long(max::URL - 24));
        assert_eq!(
            (host.len(), from.len(), url.len()),
            (max::HOST, max::FROM, max::URL)
        );
        let cases = [
            (email("host", format!("a.{host}")), "email.host"),
            (email("username", long(max::USERNAME + 1)), "email.username"),
            (email("password", long(max::PASSWORD + 1)), "email.password"),
            (email("from", format!("a{from}")), "email.from"),
            (
                serde_json::json!({"sms": {"url": format!("{url}a")}}),
                "sms.url",
            ),
            (
                serde_json::json!({"sms": {"url": "https://sms.example.com", "token": long(max::TOKEN + 1)}}),
                "sms.token",
            ),
            (
                serde_json::json!({"webhook": {"allowed_hosts": [long(max::ALLOWED_HOST + 1)]}}),
                "webhook.allowed_hosts",
            ),
            (
                serde_json::json!({"webhook": {"allowed_hosts": vec!["hooks.example.com"; max::ALLOWED_HOSTS + 1]}}),
                "webhook.allowed_hosts",
            ),
        ];
        for (cfg, field) in cases {
            let e = validate(&settings(cfg.clone()), guard).unwrap_err();
            assert_eq!(e.field, field, "{cfg}");
            assert!(e.problem.contains("at most"), "{e}");
        }
        // At their limits they are fine.
        let at_limit = settings(serde_json::json!({
            "email": {"host": host, "port": 587, "tls": "starttls",
                "username": long(max::USERNAME), "password": long(max::PASSWORD),
                "from": from},
            "sms": {"url": url, "token": long(max::TOKEN)},
            "webhook": {"allowed_hosts": vec!["hooks.example.com"; max::ALLOWED_HOSTS]},
        }));
        assert_eq!(validate(&at_limit, guard), Ok(()));
    }

    #[test]
    fn timeouts_default_and_stay_bounded() {
        let d = Duration::from_secs(10);
        assert_eq!(timeout(None, d), d);
        assert_eq!(timeout(Some(3), d), Duration::from_secs(3));
        assert_eq!(timeout(Some(0), d), Duration::from_secs(1));
        assert_eq!(timeout(Some(9999), d), Duration::from_secs(60));
    }
}

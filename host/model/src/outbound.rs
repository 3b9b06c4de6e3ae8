//! Outbound HTTP from modules: where a binding lets its module call ([`HttpGrant`], checked
//! when the binding is saved and again on every request), and what each call looked like
//! ([`HttpExchange`], kept in the run record). One copy of the matching rule, shared by the
//! API's validation and the sandbox.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Destinations one binding may list.
pub const MAX_DESTINATIONS: usize = 32;

/// What a binding lets its module call over HTTP (`wasi:http/outgoing-handler`). Empty: no
/// HTTP at all.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpGrant {
    /// Where the module may send requests: `host`, `host:port`, or `*.domain` (any name
    /// under `domain`, not `domain` itself). Without a port only the scheme's default port
    /// (443, or 80 for `http`). A bare `*` is refused.
    #[serde(default)]
    pub destinations: Vec<String>,
    /// Whether plain `http://` may be used too; otherwise only `https://`.
    #[serde(default)]
    pub allow_http: bool,
    /// The tenant's secrets the module may use, by name: the host puts a secret where the
    /// module wrote `{{secret:NAME}}` in a header value or a URL query value of a request to
    /// one of `destinations`. The module never sees the value.
    #[serde(default)]
    pub secrets: Vec<String>,
}

/// Secrets one binding may be granted.
pub const MAX_SECRETS: usize = 32;

/// Whether `name` is a secret name: `A-Z`, `0-9`, `_`, starting with a letter, at most 64.
pub fn valid_secret_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// One parsed destination of a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Lower-case host; for a wildcard, the domain after `*.`.
    host: String,
    wildcard: bool,
    port: Option<u16>,
}

impl Destination {
    /// Parses `host`, `host:port`, `[v6]:port` or `*.domain[:port]`; the error names the
    /// problem.
    pub fn parse(text: &str) -> Result<Destination, String> {
        let t = text.trim().to_ascii_lowercase();
        if t == "*" || t == "*.*" || t.starts_with("*:") {
            return Err(format!(
                "{text:?} would grant every host; name the hosts the module may call (`*.example.com` for the names under one domain)"
            ));
        }
        if t.contains("://") || t.contains(['/', '?', '#', '@']) || t.contains(char::is_whitespace)
        {
            return Err(format!(
                "{text:?} is not a destination: write a host, optionally with `:port` (no scheme, path or user)"
            ));
        }
        let (host, port) = split_port(&t).map_err(|e| format!("{text:?}: {e}"))?;
        let (wildcard, host) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host),
        };
        if host.is_empty() || host.len() > 253 {
            return Err(format!("{text:?} has no host"));
        }
        if host.contains('*') {
            return Err(format!(
                "{text:?}: `*` is only allowed as a whole first label (`*.example.com`)"
            ));
        }
        let bracketed = host.starts_with('[') && host.ends_with(']');
        if bracketed {
            if wildcard
                || host[1..host.len() - 1]
                    .parse::<std::net::Ipv6Addr>()
                    .is_err()
            {
                return Err(format!("{text:?} is not an IPv6 address"));
            }
        } else if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            || host.starts_with('.')
            || host.ends_with('.')
            || host.contains("..")
        {
            return Err(format!("{text:?} is not a host name"));
        }
        if wildcard && !host.contains('.') {
            return Err(format!(
                "{text:?} would grant a whole top-level domain; name a domain under it"
            ));
        }
        Ok(Destination {
            host: host.to_string(),
            wildcard,
            port,
        })
    }

    /// Whether a request to `host` on `port` (as the URL has them; `default_port` is the
    /// scheme's) is to this destination.
    pub fn matches(&self, host: &str, port: Option<u16>, default_port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let port = port.unwrap_or(default_port);
        let host_ok = if self.wildcard {
            host.strip_suffix(&self.host)
                .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
        } else {
            host == self.host
        };
        host_ok && port == self.port.unwrap_or(default_port)
    }
}

/// `host[:port]` split; brackets of an IPv6 literal kept on the host.
fn split_port(t: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if t.starts_with('[') {
        match t.find(']') {
            Some(end) => (&t[..=end], t[end + 1..].strip_prefix(':')),
            None => return Err("an unclosed `[`".into()),
        }
    } else {
        match t.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (t, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("{p:?} is not a port (1-65535)")),
        },
    };
    Ok((host, port))
}

/// Why a request is outside a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantMiss {
    /// The binding grants no HTTP.
    NoGrant,
    /// `http://` without `allow_http` (or a scheme other than http/https).
    Scheme(String),
    /// Not one of the destinations.
    Destination(String),
}

impl std::fmt::Display for GrantMiss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GrantMiss::NoGrant => write!(f, "this module's binding grants no HTTP"),
            GrantMiss::Scheme(s) => write!(
                f,
                "{s}:// is not granted (https only unless the binding's grant sets allow_http)"
            ),
            GrantMiss::Destination(d) => {
                write!(f, "{d} is not among the binding's HTTP destinations")
            }
        }
    }
}

impl HttpGrant {
    pub fn is_empty(&self) -> bool {
        self.destinations.is_empty()
    }

    /// Every destination parses, and there are not too many.
    pub fn validate(&self) -> Result<(), String> {
        if self.destinations.len() > MAX_DESTINATIONS {
            return Err(format!(
                "at most {MAX_DESTINATIONS} destinations (got {})",
                self.destinations.len()
            ));
        }
        for d in &self.destinations {
            Destination::parse(d)?;
        }
        if self.secrets.len() > MAX_SECRETS {
            return Err(format!(
                "at most {MAX_SECRETS} secrets (got {})",
                self.secrets.len()
            ));
        }
        if let Some(bad) = self.secrets.iter().find(|n| !valid_secret_name(n)) {
            return Err(format!(
                "secret name {bad:?} is not valid: A-Z, 0-9 and _, starting with a letter, at most 64"
            ));
        }
        if !self.secrets.is_empty() && self.destinations.is_empty() {
            return Err("secrets are granted for destinations: list the destinations too".into());
        }
        Ok(())
    }

    /// Whether a request with this scheme, host and port (as in its URL) may go out.
    pub fn permits(&self, scheme: &str, host: &str, port: Option<u16>) -> Result<(), GrantMiss> {
        if self.destinations.is_empty() {
            return Err(GrantMiss::NoGrant);
        }
        let default_port = match scheme {
            "https" => 443,
            "http" if self.allow_http => 80,
            other => return Err(GrantMiss::Scheme(other.to_string())),
        };
        let hit = self
            .destinations
            .iter()
            .filter_map(|d| Destination::parse(d).ok())
            .any(|d| d.matches(host, port, default_port));
        if hit {
            Ok(())
        } else {
            let shown = match port {
                Some(p) => format!("{host}:{p}"),
                None => host.to_string(),
            };
            Err(GrantMiss::Destination(shown))
        }
    }
}

/// One header of a recorded exchange.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct HeaderLine {
    pub name: String,
    pub value: String,
}

/// One HTTP call a run made (or tried), as the run record keeps it. Secrets never appear:
/// the URL and headers are the module's own, placeholders included.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct HttpExchange {
    pub method: String,
    /// The URL as the module wrote it.
    pub url: String,
    /// Request headers whose names are on the recording allowlist.
    #[serde(default)]
    pub request_headers: Vec<HeaderLine>,
    /// Request body size, bytes.
    #[serde(default)]
    pub request_bytes: u64,
    /// SHA-256 (hex) of method, URL, and body: what replay matches a request by.
    #[serde(default)]
    pub request_digest: String,
    /// The response status; absent when no response came.
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub response_headers: Vec<HeaderLine>,
    /// The response body (as text, lossy), up to the recording cap.
    #[serde(default)]
    pub response_body: String,
    /// The whole response body's size, bytes.
    #[serde(default)]
    pub response_bytes: u64,
    /// Whether `response_body` is the whole body, exactly (UTF-8, within the cap).
    #[serde(default)]
    pub response_complete: bool,
    /// Why the call failed, beginning with its name (`not_granted: …`, `address_refused:
    /// …`, `request_limit: …`, `response_too_large: …`, `request_timeout: …`, `timeout: …`).
    #[serde(default)]
    pub error: Option<String>,
    /// Answered from a recorded run's exchange (dry-run and replay), not sent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
    /// When the call started, milliseconds after the run started.
    #[serde(default)]
    pub started_ms: u64,
    /// How long it took, milliseconds.
    #[serde(default)]
    pub duration_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(d: &[&str], allow_http: bool) -> HttpGrant {
        HttpGrant {
            destinations: d.iter().map(|s| s.to_string()).collect(),
            allow_http,
            secrets: Vec::new(),
        }
    }

    #[test]
    fn destinations_parse_or_name_the_problem() {
        for ok in [
            "api.example.com",
            "API.Example.com:8443",
            "*.example.com",
            "127.0.0.1:4000",
            "[::1]:4000",
        ] {
            assert!(Destination::parse(ok).is_ok(), "{ok}");
        }
        for (bad, says) in [
            ("*", "every host"),
            ("*:443", "every host"),
            ("*.com", "top-level"),
            ("https://api.example.com", "not a destination"),
            ("api.example.com/path", "not a destination"),
            ("api.*.com", "whole first label"),
            ("api.example.com:0", "not a port"),
            ("api.example.com:99999", "not a port"),
            ("", "no host"),
            ("a..b", "not a host name"),
        ] {
            let e = Destination::parse(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e = grant(&["ok.example.com", "*"], false)
            .validate()
            .expect_err("*");
        assert!(e.contains("every host"), "{e}");
    }

    #[test]
    fn requests_match_host_port_and_scheme() {
        let g = grant(&["api.example.com", "*.data.io", "127.0.0.1:4000"], false);
        assert_eq!(g.permits("https", "api.example.com", None), Ok(()));
        assert_eq!(g.permits("https", "API.example.com.", Some(443)), Ok(()));
        assert_eq!(g.permits("https", "x.data.io", None), Ok(()));
        assert_eq!(g.permits("https", "a.b.data.io", None), Ok(()));
        assert!(g.permits("https", "data.io", None).is_err());
        assert!(g.permits("https", "evildata.io", None).is_err());
        assert!(g.permits("https", "api.example.com", Some(8443)).is_err());
        assert!(g
            .permits("https", "api.example.com.evil.net", None)
            .is_err());
        assert_eq!(g.permits("https", "127.0.0.1", Some(4000)), Ok(()));
        assert_eq!(
            g.permits("http", "127.0.0.1", Some(4000)),
            Err(GrantMiss::Scheme("http".into()))
        );
        let open = grant(&["127.0.0.1:4000"], true);
        assert_eq!(open.permits("http", "127.0.0.1", Some(4000)), Ok(()));
        assert_eq!(
            HttpGrant::default().permits("https", "api.example.com", None),
            Err(GrantMiss::NoGrant)
        );
    }
}

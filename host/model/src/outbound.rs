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
    /// The tenant's secrets the module may use, each with the one place it may go: the host
    /// puts a secret where the module wrote `{{secret:NAME}}` in the named header's value or
    /// the named query parameter's value of a request to one of `destinations` (or of the
    /// secret's own `destinations`), and nowhere else. The module never sees the value.
    #[serde(default)]
    pub secrets: Vec<SecretGrant>,
}

/// Secrets one binding may be granted.
pub const MAX_SECRETS: usize = 32;

/// One secret a binding grants, and where it may be placed: the value of one header
/// (`{"name": "CLEARBIT_KEY", "header": "authorization"}`) or of one query parameter
/// (`{"name": "MAPS_KEY", "query": "key"}`), optionally only for some of the grant's
/// destinations. The same name may be granted several times, once per place.
///
/// Bindings saved before placements existed hold a plain name (`"CLEARBIT_KEY"`): it still
/// reads back, grants no place (so every use fails `secret_misplaced`), and saving a binding
/// with it is refused, naming the form to use.
#[derive(Debug, Clone, PartialEq, Eq, ToSchema)]
#[schema(example = json!({"name": "CLEARBIT_KEY", "header": "authorization"}))]
pub struct SecretGrant {
    /// The secret's name (`A-Z`, `0-9`, `_`).
    pub name: String,
    /// The header whose value may hold `{{secret:NAME}}` (case-insensitive).
    pub header: Option<String>,
    /// The query parameter whose value may hold `{{secret:NAME}}` (exact).
    pub query: Option<String>,
    /// Only for requests to these destinations (each one of the grant's own); empty: all of
    /// the grant's destinations.
    pub destinations: Vec<String>,
}

/// Where a module put a placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place<'a> {
    Header(&'a str),
    Query(&'a str),
}

impl std::fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Header(h) => write!(f, "header {h}"),
            Place::Query(q) => write!(f, "query parameter {q}"),
        }
    }
}

impl SecretGrant {
    /// A grant of `name` for the value of header `header`.
    pub fn header(name: &str, header: &str) -> SecretGrant {
        SecretGrant {
            name: name.into(),
            header: Some(header.into()),
            query: None,
            destinations: Vec::new(),
        }
    }

    /// A grant of `name` for the value of query parameter `query`.
    pub fn query(name: &str, query: &str) -> SecretGrant {
        SecretGrant {
            name: name.into(),
            header: None,
            query: Some(query.into()),
            destinations: Vec::new(),
        }
    }

    /// Where this grant lets the secret go, in words.
    pub fn place(&self) -> String {
        let at = match (&self.header, &self.query) {
            (Some(h), _) => format!("header {h}"),
            (None, Some(q)) => format!("query parameter {q}"),
            (None, None) => return "nowhere (granted by name only, an older form)".into(),
        };
        if self.destinations.is_empty() {
            at
        } else {
            format!("{at} (to {})", self.destinations.join(", "))
        }
    }

    /// Whether the secret may go to `place` of a request to `host`/`port` (`default_port`:
    /// the scheme's).
    pub fn admits(
        &self,
        place: Place<'_>,
        host: &str,
        port: Option<u16>,
        default_port: u16,
    ) -> bool {
        let here = match place {
            Place::Header(h) => self
                .header
                .as_deref()
                .is_some_and(|g| g.eq_ignore_ascii_case(h)),
            Place::Query(q) => self.query.as_deref() == Some(q),
        };
        here && (self.destinations.is_empty()
            || self
                .destinations
                .iter()
                .filter_map(|d| Destination::parse(d).ok())
                .any(|d| d.matches(host, port, default_port)))
    }

    /// The grant is complete and names a sound place; `destinations` are the binding's.
    fn validate(&self, destinations: &[String]) -> Result<(), String> {
        let name = &self.name;
        if !valid_secret_name(name) {
            return Err(format!(
                "secret name {name:?} is not valid: A-Z, 0-9 and _, starting with a letter, at most 64"
            ));
        }
        match (&self.header, &self.query) {
            (None, None) => {
                return Err(format!(
                    "secret {name:?} says not where it may go: grant it as {{\"name\": \"{name}\", \"header\": \"authorization\"}} or {{\"name\": \"{name}\", \"query\": \"api_key\"}} (a secret goes only into the header or query parameter its grant names)"
                ))
            }
            (Some(_), Some(_)) => {
                return Err(format!(
                    "secret {name:?} names both a header and a query parameter: grant it once for each"
                ))
            }
            (Some(h), None) => {
                let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
                if h.is_empty() || h.len() > 128 || !h.chars().all(token) {
                    return Err(format!("secret {name:?}: {h:?} is not a header name"));
                }
                let lower = h.to_ascii_lowercase();
                if ["host", "content-length", "transfer-encoding", "connection", "te", "upgrade"]
                    .contains(&lower.as_str())
                {
                    return Err(format!(
                        "secret {name:?}: header {h:?} is set by the host and cannot hold a secret"
                    ));
                }
            }
            (None, Some(q)) => {
                if q.is_empty()
                    || q.len() > 128
                    || q.contains(['&', '=', '#', '?', '%', '{', '}'])
                    || q.contains(char::is_whitespace)
                    || q.chars().any(char::is_control)
                {
                    return Err(format!(
                        "secret {name:?}: {q:?} is not a query parameter name (1-128 characters, no &, =, #, ?, %, braces or spaces)"
                    ));
                }
            }
        }
        for d in &self.destinations {
            Destination::parse(d).map_err(|e| format!("secret {name:?}: {e}"))?;
            if !destinations
                .iter()
                .any(|g| g.trim().eq_ignore_ascii_case(d.trim()))
            {
                return Err(format!(
                    "secret {name:?}: destination {d:?} is not among the grant's destinations"
                ));
            }
        }
        Ok(())
    }
}

impl Serialize for SecretGrant {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        if self.header.is_none() && self.query.is_none() && self.destinations.is_empty() {
            // The older form reads back as it was written.
            return s.serialize_str(&self.name);
        }
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("name", &self.name)?;
        if let Some(h) = &self.header {
            m.serialize_entry("header", h)?;
        }
        if let Some(q) = &self.query {
            m.serialize_entry("query", q)?;
        }
        if !self.destinations.is_empty() {
            m.serialize_entry("destinations", &self.destinations)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for SecretGrant {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        use serde_json::Value;
        const FORM: &str = "a secret grant is {\"name\": \"NAME\", \"header\": \"authorization\"} or {\"name\": \"NAME\", \"query\": \"api_key\"}, optionally with \"destinations\"";
        let text =
            |m: &serde_json::Map<String, Value>, key: &str| -> Result<Option<String>, D::Error> {
                match m.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(_) => Err(D::Error::custom(format!(
                        "{key:?} must be a string; {FORM}"
                    ))),
                }
            };
        match Value::deserialize(d)? {
            Value::String(name) => Ok(SecretGrant {
                name,
                header: None,
                query: None,
                destinations: Vec::new(),
            }),
            Value::Object(m) => {
                if let Some(k) = m
                    .keys()
                    .find(|k| !["name", "header", "query", "destinations"].contains(&k.as_str()))
                {
                    return Err(D::Error::custom(format!(
                        "unknown key {k:?} in a secret grant; {FORM}"
                    )));
                }
                let name = text(&m, "name")?.ok_or_else(|| {
                    D::Error::custom(format!("a secret grant needs \"name\"; {FORM}"))
                })?;
                let destinations = match m.get("destinations") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|d| {
                            d.as_str().map(str::to_string).ok_or_else(|| {
                                D::Error::custom("\"destinations\" of a secret grant are strings")
                            })
                        })
                        .collect::<Result<_, _>>()?,
                    Some(_) => {
                        return Err(D::Error::custom(
                            "\"destinations\" of a secret grant is a list of destinations",
                        ))
                    }
                };
                Ok(SecretGrant {
                    name,
                    header: text(&m, "header")?,
                    query: text(&m, "query")?,
                    destinations,
                })
            }
            _ => Err(D::Error::custom(FORM)),
        }
    }
}

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
        for (i, s) in self.secrets.iter().enumerate() {
            s.validate(&self.destinations)
                .map_err(|e| format!("secrets[{i}]: {e}"))?;
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
    /// The run record's size budget cut `response_body` shorter than recorded (the report
    /// keeps logs, exchanges, host calls and error within 256 KiB together).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub response_body_cut: bool,
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

    #[test]
    fn secret_grants_name_their_place_and_old_names_still_read() {
        let mut g = grant(&["api.example.com", "search.example.com"], false);
        g.secrets = serde_json::from_str(
            r#"[{"name": "KEY", "header": "Authorization"},
                {"name": "KEY", "query": "api_key", "destinations": ["api.example.com"]}]"#,
        )
        .expect("placed grants parse");
        assert_eq!(g.validate(), Ok(()));
        let (h, q) = (&g.secrets[0], &g.secrets[1]);
        assert!(h.admits(Place::Header("authorization"), "api.example.com", None, 443));
        assert!(!h.admits(Place::Header("x-echo"), "api.example.com", None, 443));
        assert!(!h.admits(Place::Query("authorization"), "api.example.com", None, 443));
        assert!(q.admits(Place::Query("api_key"), "api.example.com", None, 443));
        assert!(!q.admits(Place::Query("api_key"), "search.example.com", None, 443));
        assert!(!q.admits(Place::Query("q"), "api.example.com", None, 443));
        // Round trip: the placed form stays an object, the older one a plain name.
        let back = serde_json::to_value(&g.secrets).expect("json");
        assert_eq!(back[1]["destinations"][0], "api.example.com");
        let old: Vec<SecretGrant> = serde_json::from_str(r#"["KEY"]"#).expect("old rows read");
        assert_eq!(serde_json::to_string(&old).expect("json"), r#"["KEY"]"#);
        assert!(!old[0].admits(Place::Header("authorization"), "api.example.com", None, 443));

        for (secrets, says) in [
            (r#"["KEY"]"#, "says not where it may go"),
            (r#"[{"name": "KEY", "header": "a", "query": "b"}]"#, "both"),
            (r#"[{"name": "KEY", "header": "x y"}]"#, "not a header name"),
            (r#"[{"name": "KEY", "header": "Host"}]"#, "set by the host"),
            (
                r#"[{"name": "KEY", "query": "a&b"}]"#,
                "not a query parameter name",
            ),
            (r#"[{"name": "key", "query": "k"}]"#, "not valid"),
            (
                r#"[{"name": "KEY", "query": "k", "destinations": ["evil.example.net"]}]"#,
                "not among the grant's destinations",
            ),
        ] {
            g.secrets = serde_json::from_str(secrets).expect(secrets);
            let e = g.validate().expect_err(secrets);
            assert!(
                e.contains(says) && e.starts_with("secrets[0]: "),
                "{secrets}: {e}"
            );
        }
        for (bad, says) in [
            (
                r#"[{"name": "KEY", "headr": "a"}]"#,
                "unknown key \"headr\"",
            ),
            (r#"[{"header": "a"}]"#, "needs \"name\""),
            (r#"[7]"#, "a secret grant is"),
        ] {
            let e = serde_json::from_str::<Vec<SecretGrant>>(bad).expect_err(bad);
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
    }
}

//! The one gate every outbound connection passes. Tenants and modules choose where messages
//! go — webhook URLs, the SMS provider's endpoint, the SMTP relay — so before the host
//! connects anywhere, the destination is checked against [`address::classify`]: as a literal
//! (IP, or the reserved name `localhost`) and as every address a name resolves to. The check
//! sits in the resolver the connection itself uses (reqwest's `dns_resolver`, and for SMTP the
//! addresses handed to lettre), so a DNS answer cannot change between check and connect.
//! Redirects are never followed. `--allow-internal-destinations` opens an operator's own
//! networks (loopback, private, link-local, unique local); reserved ranges stay refused.
//!
//! Anything that will open a connection on a tenant's behalf (modules' HTTP calls too) goes
//! through [`Guard::lookup`] or [`Guard::resolver`] and [`Guard::check_host`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::address;

/// At most this many addresses of one name are tried (bounded work per attempt).
const MAX_ADDRESSES: usize = 8;

/// The destination policy: public addresses only, unless the operator opened internal ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Guard {
    allow_internal: bool,
}

/// Why a destination may not be reached. Its text is what an attempt records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("refused: {ip} is {name} ({range})")]
    Address {
        ip: IpAddr,
        name: &'static str,
        range: &'static str,
    },
    #[error("refused: {host} is a loopback name")]
    LoopbackName { host: String },
    /// The resolved addresses are not named: they would map the internal network.
    #[error("refused: the destination resolves only to internal addresses")]
    Resolved,
}

/// Why a destination cannot be connected to before any connection is tried.
#[derive(Debug, thiserror::Error)]
pub enum Unreachable {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("cannot resolve {host}")]
    Unresolved { host: String },
}

impl Guard {
    pub fn new(allow_internal: bool) -> Guard {
        Guard { allow_internal }
    }

    pub fn allows_internal(&self) -> bool {
        self.allow_internal
    }

    /// Whether `ip` may be connected to.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        match address::classify(ip) {
            Some(s) if !(s.internal && self.allow_internal) => Err(Refused::Address {
                ip,
                name: s.name,
                range: s.range,
            }),
            _ => Ok(()),
        }
    }

    /// The checks that need no lookup: an IP literal (bracketed or not) and the names that
    /// always mean this machine (`localhost`, `*.localhost`, RFC 6761). Other names are
    /// checked when they are resolved.
    pub fn check_host(&self, host: &str) -> Result<(), Refused> {
        if let Some(ip) = literal(host) {
            return self.check(ip);
        }
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        if !self.allow_internal && (name == "localhost" || name.ends_with(".localhost")) {
            return Err(Refused::LoopbackName {
                host: host.to_string(),
            });
        }
        Ok(())
    }

    /// The addresses of `host` that may be connected to (at most [`MAX_ADDRESSES`]), in the
    /// resolver's order. Connect only to these: never resolve the name again.
    pub async fn lookup(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Unreachable> {
        self.check_host(host)?;
        if let Some(ip) = literal(host) {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| Unreachable::Unresolved {
                host: host.to_string(),
            })?
            .collect();
        if found.is_empty() {
            return Err(Unreachable::Unresolved {
                host: host.to_string(),
            });
        }
        self.admit(found)
    }

    /// What a lookup found, less what may not be reached; refused when nothing is left.
    fn admit(&self, found: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, Unreachable> {
        let allowed: Vec<SocketAddr> = found
            .into_iter()
            .filter(|a| self.check(a.ip()).is_ok())
            .take(MAX_ADDRESSES)
            .collect();
        if allowed.is_empty() {
            return Err(Refused::Resolved.into());
        }
        Ok(allowed)
    }

    /// This guard as an HTTP client's resolver (names only: IP literals in URLs never reach
    /// a resolver, so check them with [`Guard::check_host`] first).
    pub fn resolver(&self) -> Arc<Guard> {
        Arc::new(*self)
    }
}

impl Resolve for Guard {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = *self;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = guard.lookup(&host, 0).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Modules' HTTP calls pass the same guard (the sandbox names no host type, so it takes the
/// guard as this trait).
impl stagecraft_sandbox::AddressGuard for Guard {
    fn lookup(&self, host: String, port: u16) -> stagecraft_sandbox::http::Lookup {
        let guard = *self;
        Box::pin(async move {
            Guard::lookup(&guard, &host, port)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// `host` as an IP address, if it is one (`[::1]` as in URLs, or bare).
pub fn literal(host: &str) -> Option<IpAddr> {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .ok()
}

/// The guard's verdict somewhere in an error's chain of causes, if the guard refused.
pub fn refusal_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Unreachable> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(u) = err.downcast_ref::<Unreachable>() {
            return Some(u);
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_loopback_names_are_checked_without_a_lookup() {
        let g = Guard::new(false);
        for host in [
            "127.0.0.1",
            "[::1]",
            "::1",
            "[::ffff:127.0.0.1]",
            "10.0.0.1",
            "[::7f00:1]",
            "localhost",
            "LocalHost.",
            "api.localhost",
        ] {
            assert!(g.check_host(host).is_err(), "{host}");
        }
        for host in [
            "93.184.216.34",
            "[2606:4700::1111]",
            "hooks.example.com",
            "localhost.example.com",
        ] {
            assert_eq!(g.check_host(host), Ok(()), "{host}");
        }
        assert_eq!(
            g.check_host("127.0.0.1").map_err(|e| e.to_string()),
            Err("refused: 127.0.0.1 is loopback (127.0.0.0/8)".into())
        );
    }

    #[test]
    fn the_operators_flag_opens_internal_networks_only() {
        let g = Guard::new(true);
        for host in ["127.0.0.1", "[::1]", "10.0.0.1", "fd00::1", "localhost"] {
            assert_eq!(g.check_host(host), Ok(()), "{host}");
        }
        for host in [
            "224.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "[::7f00:1]",
            "[2002:7f00:1::1]",
            "192.0.2.1",
        ] {
            assert!(g.check_host(host).is_err(), "{host}");
        }
    }

    #[test]
    fn a_lookup_keeps_only_reachable_addresses_and_never_names_internal_ones() {
        let addr = |s: &str| -> SocketAddr { s.parse().expect(s) };
        let g = Guard::new(false);
        let mixed = vec![
            addr("127.0.0.1:25"),
            addr("93.184.216.34:25"),
            addr("[::1]:25"),
        ];
        assert_eq!(
            g.admit(mixed.clone()).ok(),
            Some(vec![addr("93.184.216.34:25")])
        );
        let internal = vec![addr("127.0.0.1:25"), addr("[::1]:25"), addr("10.0.0.7:25")];
        let e = g.admit(internal.clone()).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("refused: the destination resolves only to internal addresses")
        );
        assert_eq!(
            Guard::new(true).admit(internal.clone()).ok(),
            Some(internal)
        );
        let many = vec![addr("93.184.216.34:25"); 20];
        assert_eq!(g.admit(many).map(|a| a.len()).ok(), Some(MAX_ADDRESSES));
    }

    #[tokio::test]
    async fn loopback_names_and_literals_are_refused_before_any_lookup() {
        for host in ["localhost", "127.0.0.1", "::1"] {
            let e = Guard::new(false).lookup(host, 25).await.err();
            assert!(matches!(e, Some(Unreachable::Refused(_))), "{host}: {e:?}");
        }
        let allowed = Guard::new(true).lookup("127.0.0.1", 25).await;
        assert_eq!(
            allowed.ok(),
            Some(vec![SocketAddr::from(([127, 0, 0, 1], 25))])
        );
    }
}

//! Which IP addresses an outbound connection may reach. Tenants and modules choose webhook
//! URLs, SMS endpoints and SMTP relays, so every address the host would connect to is
//! classified first: public, or one of the special ranges of the IANA IPv4 and IPv6
//! Special-Purpose Address Registries (plus multicast and everything IPv6 outside
//! `2000::/3`). Each special range is either *internal* (an operator's own network:
//! loopback, private, shared, link-local, unique local — what `--allow-internal-destinations`
//! opens) or *reserved* (documentation, benchmarking, multicast, broadcast, protocol
//! assignments, transition mechanisms — never a legitimate destination, always refused).
//!
//! Addresses that carry an IPv4 address are judged by it where that is how a public IPv4
//! service legitimately appears: IPv4-mapped `::ffff:a.b.c.d` (dual-stack sockets) and the
//! NAT64 well-known prefix `64:ff9b::/96` (DNS64 networks). Every other embedding —
//! IPv4-compatible `::a.b.c.d`, local-use NAT64 `64:ff9b:1::/48`, 6to4 `2002::/16`, Teredo
//! `2001::/32` — is deprecated or local, and refused whatever it carries.
//!
//! Every entry of both registries is refused, including the few marked "globally reachable"
//! (anycast infrastructure such as AS112, AMT, PCP and TURN): no webhook receiver, SMS provider
//! or mail relay lives there.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

/// Why an address is not public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Special {
    /// The range, e.g. `127.0.0.0/8`.
    pub range: &'static str,
    /// What it is, e.g. `loopback`.
    pub name: &'static str,
    /// An operator's own network (opened by `--allow-internal-destinations`), or reserved.
    pub internal: bool,
}

/// `(range, name, internal)`: the IANA IPv4 Special-Purpose Address Registry, multicast and
/// broadcast. Most specific first where ranges nest, so an address gets the precise name.
const V4: &[(&str, &str, bool)] = &[
    ("255.255.255.255/32", "limited broadcast", false),
    ("0.0.0.0/8", "\"this network\"", false),
    ("10.0.0.0/8", "private", true),
    ("100.64.0.0/10", "carrier-grade NAT shared space", true),
    ("127.0.0.0/8", "loopback", true),
    ("169.254.0.0/16", "link-local", true),
    ("172.16.0.0/12", "private", true),
    ("192.0.0.0/24", "IETF protocol assignments", false),
    ("192.0.2.0/24", "documentation", false),
    ("192.31.196.0/24", "AS112 anycast", false),
    ("192.52.193.0/24", "AMT anycast", false),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast", false),
    ("192.168.0.0/16", "private", true),
    ("192.175.48.0/24", "AS112 direct delegation", false),
    ("198.18.0.0/15", "benchmarking", false),
    ("198.51.100.0/24", "documentation", false),
    ("203.0.113.0/24", "documentation", false),
    ("224.0.0.0/4", "multicast", false),
    ("240.0.0.0/4", "reserved", false),
];

/// `(range, name, internal)`: the IANA IPv6 Special-Purpose Address Registry and the other
/// non-global ranges. Checked after IPv4-mapped and NAT64 well-known addresses (judged by
/// their IPv4), before the catch-all: outside `2000::/3` nothing is global unicast.
const V6: &[(&str, &str, bool)] = &[
    ("::/128", "unspecified", false),
    ("::1/128", "loopback", true),
    ("::/96", "deprecated IPv4-compatible", false),
    ("::ffff:0:0:0/96", "IPv4-translated", false),
    ("64:ff9b:1::/48", "local-use IPv4/IPv6 translation", false),
    ("100::/64", "discard-only", false),
    ("100:0:0:1::/64", "dummy prefix", false),
    ("2001::/32", "Teredo", false),
    ("2001:db8::/32", "documentation", false),
    ("2001:10::/28", "deprecated ORCHID", false),
    ("2001:20::/28", "ORCHIDv2", false),
    ("2001::/23", "IETF protocol assignments", false),
    ("2002::/16", "6to4", false),
    ("2620:4f:8000::/48", "AS112 direct delegation", false),
    ("3fff::/20", "documentation", false),
    ("5f00::/16", "SRv6 segment identifiers", false),
    ("fc00::/7", "unique local", true),
    ("fe80::/10", "link-local", true),
    ("fec0::/10", "deprecated site-local", true),
    ("ff00::/8", "multicast", false),
];

/// A table parsed once into (network as an integer, prefix length, what it is). Entries are
/// constants checked by a unit test, so none is ever dropped by the `filter_map`.
fn parse<A, N>(table: &'static [(&'static str, &'static str, bool)]) -> Vec<(N, u8, Special)>
where
    A: std::str::FromStr,
    N: From<A>,
{
    table
        .iter()
        .filter_map(|&(range, name, internal)| {
            let (net, len) = range.split_once('/')?;
            let net = N::from(net.parse::<A>().ok()?);
            let len = len.parse().ok()?;
            Some((
                net,
                len,
                Special {
                    range,
                    name,
                    internal,
                },
            ))
        })
        .collect()
}

const NOT_GLOBAL_V6: Special = Special {
    range: "outside 2000::/3",
    name: "not global unicast",
    internal: false,
};

static SPECIAL_V4: LazyLock<Vec<(u32, u8, Special)>> = LazyLock::new(|| parse::<Ipv4Addr, u32>(V4));
static SPECIAL_V6: LazyLock<Vec<(u128, u8, Special)>> =
    LazyLock::new(|| parse::<Ipv6Addr, u128>(V6));

fn within<T>(ip: T, net: T, len: u8, bits: u32) -> bool
where
    T: Copy + PartialEq + std::ops::Shr<u32, Output = T> + std::ops::Shl<u32, Output = T>,
{
    let shift = bits - u32::from(len);
    if shift >= bits {
        return true; // a /0 holds everything
    }
    (ip >> shift) == (net >> shift)
}

/// The special range `ip` is in, or `None` for a public address.
pub fn classify(ip: IpAddr) -> Option<Special> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Special> {
    let n = u32::from(ip);
    SPECIAL_V4
        .iter()
        .find(|(net, len, _)| within(n, *net, *len, 32))
        .map(|(_, _, s)| *s)
}

fn classify_v6(ip: Ipv6Addr) -> Option<Special> {
    let n = u128::from(ip);
    // The two forms a public IPv4 service legitimately takes: judged by what they carry.
    let mapped = within(n, 0xffff_0000_0000, 96, 128);
    let nat64 = within(n, 0x0064_ff9b_u128 << 96, 96, 128);
    if mapped || nat64 {
        return classify_v4(Ipv4Addr::from((n & 0xffff_ffff) as u32));
    }
    if let Some((_, _, s)) = SPECIAL_V6
        .iter()
        .find(|(net, len, _)| within(n, *net, *len, 128))
    {
        return Some(*s);
    }
    if !within(n, 0x2000_u128 << 112, 3, 128) {
        return Some(NOT_GLOBAL_V6);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every address form the guard must recognise, with the name it must give.
    const REFUSED: &[(&str, &str)] = &[
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "carrier-grade NAT shared space"),
        ("100.127.255.255", "carrier-grade NAT shared space"),
        ("0.0.0.0", "\"this network\""),
        ("0.1.2.3", "\"this network\""),
        ("192.0.0.8", "IETF protocol assignments"),
        ("192.0.0.170", "IETF protocol assignments"),
        ("192.0.2.1", "documentation"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("192.31.196.1", "AS112 anycast"),
        ("192.52.193.1", "AMT anycast"),
        ("192.88.99.1", "deprecated 6to4 relay anycast"),
        ("192.175.48.6", "AS112 direct delegation"),
        ("198.18.0.1", "benchmarking"),
        ("198.19.255.255", "benchmarking"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.254", "reserved"),
        ("255.255.255.255", "limited broadcast"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("::7f00:1", "deprecated IPv4-compatible"),
        ("::127.0.0.1", "deprecated IPv4-compatible"),
        ("::8.8.8.8", "deprecated IPv4-compatible"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:0:127.0.0.1", "IPv4-translated"),
        ("64:ff9b::7f00:1", "loopback"),
        ("64:ff9b::10.0.0.1", "private"),
        ("64:ff9b::a9fe:a9fe", "link-local"),
        ("64:ff9b:1::8.8.8.8", "local-use IPv4/IPv6 translation"),
        ("100::1", "discard-only"),
        ("100:0:0:1::1", "dummy prefix"),
        ("2001::1", "Teredo"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
        ("2001:1::1", "IETF protocol assignments"),
        ("2001:2::1", "IETF protocol assignments"),
        ("2001:3::1", "IETF protocol assignments"),
        ("2001:4:112::1", "IETF protocol assignments"),
        ("2001:10::1", "deprecated ORCHID"),
        ("2001:20::1", "ORCHIDv2"),
        ("2001:30::1", "IETF protocol assignments"),
        ("2001:1ff::1", "IETF protocol assignments"),
        ("2001:db8::1", "documentation"),
        ("2002:7f00:1::1", "6to4"),
        ("2002:808:808::1", "6to4"),
        ("2620:4f:8000::1", "AS112 direct delegation"),
        ("3fff::1", "documentation"),
        ("5f00::1", "SRv6 segment identifiers"),
        ("fc00::1", "unique local"),
        ("fd12:3456::1", "unique local"),
        ("fe80::1", "link-local"),
        ("febf::1", "link-local"),
        ("fec0::1", "deprecated site-local"),
        ("ff02::1", "multicast"),
        ("ff0e::1", "multicast"),
        ("1::1", "not global unicast"),
        ("4000::1", "not global unicast"),
        ("e000::1", "not global unicast"),
    ];

    /// Public addresses, including the embedded forms that carry a public IPv4.
    const PUBLIC: &[&str] = &[
        "93.184.216.34",
        "1.1.1.1",
        "8.8.8.8",
        "100.63.255.255",
        "100.128.0.1",
        "172.15.255.255",
        "172.32.0.1",
        "192.0.1.1",
        "192.88.98.1",
        "198.17.255.255",
        "198.20.0.1",
        "223.255.255.255",
        "::ffff:93.184.216.34",
        "64:ff9b::8.8.8.8",
        "2606:4700::1111",
        "2001:200::1",
        "2a00:1450:4001:80b::200e",
        "3ffe::1",
    ];

    #[test]
    fn every_table_entry_parses() {
        assert_eq!(SPECIAL_V4.len(), V4.len());
        assert_eq!(SPECIAL_V6.len(), V6.len());
    }

    #[test]
    fn every_special_form_is_named() {
        for (ip, name) in REFUSED {
            let parsed: IpAddr = ip.parse().expect(ip);
            let got = classify(parsed).map(|s| s.name);
            assert_eq!(got, Some(*name), "{ip}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in PUBLIC {
            let parsed: IpAddr = ip.parse().expect(ip);
            assert_eq!(classify(parsed), None, "{ip}");
        }
    }

    #[test]
    fn only_an_operators_own_networks_are_internal() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "192.168.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(
                classify(ip.parse().expect(ip)).is_some_and(|s| s.internal),
                "{ip}"
            );
        }
        for ip in [
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "::",
            "::7f00:1",
            "2002:7f00:1::1",
            "2001::1",
            "ff02::1",
        ] {
            assert!(
                classify(ip.parse().expect(ip)).is_some_and(|s| !s.internal),
                "{ip}"
            );
        }
    }
}

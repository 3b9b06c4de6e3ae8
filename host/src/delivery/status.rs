//! What a delivery attempt records when it fails: a short status — `HTTP 500 Internal Server
//! Error`, `SMTP 550 mailbox unavailable`, `connection refused`, `timed out`, the guard's
//! refusal — and never the body or text of a reply. Attempts are readable by the tenant
//! (`GET /v1/messages/{id}`, the console); echoing what the other side said would let a
//! tenant read services it can make the host talk to.

use std::error::Error;
use std::io;

use super::guard::{refusal_in, Unreachable};

/// The status line of an HTTP answer: code and canonical reason.
pub fn http(code: reqwest::StatusCode) -> String {
    let mut s = format!("HTTP {}", code.as_u16());
    if let Some(reason) = code.canonical_reason() {
        s.push(' ');
        s.push_str(reason);
    }
    if code.is_redirection() {
        s.push_str(" (redirects are not followed)");
    }
    s
}

/// A failed HTTP request in a few words, and whether retrying is pointless (the guard refused).
pub fn network(e: &reqwest::Error) -> (String, bool) {
    if let Some(u) = refusal_in(e) {
        return (u.to_string(), matches!(u, Unreachable::Refused(_)));
    }
    if e.is_timeout() {
        return ("timed out".into(), false);
    }
    if let Some(kind) = io_kind(e) {
        return (kind.to_string(), false);
    }
    let what = if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "could not read the response"
    } else {
        "request failed"
    };
    (with_cause(what, e), false)
}

/// A failed SMTP exchange in a few words: the reply code and what the code means, never the
/// server's text.
pub fn smtp(e: &lettre::transport::smtp::Error) -> String {
    if let Some(u) = refusal_in(e) {
        return u.to_string();
    }
    if let Some(code) = e.status() {
        let n = u16::from(code);
        return match smtp_meaning(n) {
            Some(m) => format!("SMTP {n} {m}"),
            None => format!("SMTP {n}"),
        };
    }
    if e.is_timeout() {
        return "timed out".into();
    }
    if let Some(kind) = io_kind(e) {
        return kind.to_string();
    }
    if e.is_tls() {
        return with_cause("TLS failed", e);
    }
    if e.is_response() {
        return "not an SMTP server (unreadable reply)".into();
    }
    if e.is_client() {
        return with_cause("SMTP client error", e);
    }
    "SMTP connection failed".into()
}

/// The few I/O failures worth naming, found anywhere in the error's causes.
fn io_kind(e: &(dyn Error + 'static)) -> Option<&'static str> {
    let mut cur: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            let name = match io.kind() {
                io::ErrorKind::ConnectionRefused => "connection refused",
                io::ErrorKind::ConnectionReset => "connection reset",
                io::ErrorKind::ConnectionAborted => "connection aborted",
                io::ErrorKind::TimedOut => "timed out",
                io::ErrorKind::NetworkUnreachable => "network unreachable",
                io::ErrorKind::HostUnreachable => "host unreachable",
                io::ErrorKind::UnexpectedEof => "connection closed early",
                io::ErrorKind::BrokenPipe => "connection closed early",
                _ => {
                    cur = err.source();
                    continue;
                }
            };
            return Some(name);
        }
        cur = err.source();
    }
    None
}

/// `what: <innermost cause>`, the cause clipped. Causes are this side's own diagnostics
/// (a TLS verdict, a protocol error), not the reply's content.
fn with_cause(what: &str, e: &(dyn Error + 'static)) -> String {
    let mut inner: Option<&(dyn Error + 'static)> = None;
    let mut next = e.source();
    while let Some(s) = next {
        inner = Some(s);
        next = s.source();
    }
    let cause: String = inner
        .map(|i| i.to_string().chars().take(120).collect())
        .unwrap_or_default();
    if cause.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {cause}")
    }
}

/// What an SMTP reply code means (RFC 5321 §4.2.3, RFC 4954).
fn smtp_meaning(code: u16) -> Option<&'static str> {
    Some(match code {
        421 => "service not available",
        450 => "mailbox unavailable",
        451 => "local error in processing",
        452 => "insufficient system storage",
        454 => "temporary authentication failure",
        500 => "syntax error",
        501 => "syntax error in parameters",
        502 => "command not implemented",
        503 => "bad sequence of commands",
        504 => "parameter not implemented",
        521 | 556 => "does not accept mail",
        530 => "authentication required",
        534 => "authentication mechanism too weak",
        535 => "authentication failed",
        550 => "mailbox unavailable",
        551 => "user not local",
        552 => "exceeded storage allocation",
        553 => "mailbox name not allowed",
        554 => "transaction failed",
        555 => "parameters not recognized",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_name_the_code_and_its_reason_only() {
        let s = |n: u16| http(reqwest::StatusCode::from_u16(n).expect("status"));
        assert_eq!(s(500), "HTTP 500 Internal Server Error");
        assert_eq!(s(400), "HTTP 400 Bad Request");
        assert_eq!(s(302), "HTTP 302 Found (redirects are not followed)");
        assert_eq!(s(599), "HTTP 599");
        assert_eq!(smtp_meaning(550), Some("mailbox unavailable"));
        assert_eq!(smtp_meaning(299), None);
    }

    #[test]
    fn io_failures_are_named_through_their_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] io::Error);
        let e = Outer(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(io_kind(&e), Some("connection refused"));
        let e = Outer(io::Error::other("odd"));
        assert_eq!(io_kind(&e), None);
        assert_eq!(
            with_cause("could not connect", &e),
            "could not connect: odd"
        );
    }
}

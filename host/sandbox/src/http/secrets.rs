//! Secrets a module uses but never sees. A module writes `{{secret:NAME}}` in a header value
//! or a URL query value; just before the request leaves, the host puts the tenant's secret
//! there — only for a request already within the grant, only for names the binding's grant
//! lists, and only into the header or query parameter that grant names for that secret
//! (and its destinations, if it lists some). Anywhere else is refused `secret_misplaced`:
//! another header or query value of a destination that reflects what it is sent (a search
//! endpoint's `?q=`) would read the value back to the module, and the host, path or a query
//! key would hand it to a log or a DNS server the module picked. What the module, its logs
//! and the run record hold is its own request, placeholder and all; a response that echoes
//! a secret has it replaced by its placeholder before the module reads it.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use stagecraft_model::outbound::{Place, SecretGrant};
use zeroize::Zeroizing;

/// The tenant's secrets, as the host keeps them (decrypted on demand).
pub trait SecretSource: Send + Sync + 'static {
    /// The value of `tenant`'s secret `name`, if it has one.
    fn secret(&self, tenant: &str, name: &str) -> Option<Zeroizing<String>>;
}

const OPEN: &str = "{{secret:";
const CLOSE: &str = "}}";

/// What a request may use: the tenant, the granted names, and where values come from.
pub struct Secrets {
    pub tenant: String,
    pub granted: Vec<SecretGrant>,
    pub source: Option<Arc<dyn SecretSource>>,
}

/// Why a placeholder could not be filled: `(name, why)`.
pub type Refusal = (&'static str, String);

/// The values put into one request, to scrub them from what comes back.
#[derive(Default)]
pub struct Used(Vec<(String, Zeroizing<String>)>);

/// Whether `text` holds a placeholder.
pub fn mentions(text: &str) -> bool {
    text.contains(OPEN)
}

impl Secrets {
    fn value(
        &self,
        name: &str,
        place: Place<'_>,
        to: &reqwest::Url,
        used: &mut Used,
    ) -> Result<Zeroizing<String>, Refusal> {
        let grants: Vec<&SecretGrant> = self.granted.iter().filter(|g| g.name == name).collect();
        if grants.is_empty() {
            return Err((
                "secret_not_granted",
                format!("{name} is not among the binding's secrets"),
            ));
        }
        let host = to.host_str().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let default_port = if to.scheme() == "http" { 80 } else { 443 };
        if !grants
            .iter()
            .any(|g| g.admits(place, host, to.port(), default_port))
        {
            let places: Vec<String> = grants.iter().map(|g| g.place()).collect();
            return Err((
                "secret_misplaced",
                format!(
                    "{name} may go only into {}, not into the {place} of a request to {host}",
                    places.join(" or ")
                ),
            ));
        }
        let value = self
            .source
            .as_ref()
            .and_then(|s| s.secret(&self.tenant, name))
            .ok_or_else(|| ("secret_missing", format!("the tenant has no secret {name}")))?;
        used.0.push((name.to_string(), value.clone()));
        Ok(value)
    }

    /// `text`, found at `place` of a request to `to`, with every placeholder filled in.
    pub fn fill(
        &self,
        text: &str,
        place: Place<'_>,
        to: &reqwest::Url,
        used: &mut Used,
    ) -> Result<Zeroizing<String>, Refusal> {
        let mut out = Zeroizing::new(String::with_capacity(text.len()));
        let mut rest = text;
        while let Some(at) = rest.find(OPEN) {
            out.push_str(&rest[..at]);
            let after = &rest[at + OPEN.len()..];
            let Some(end) = after.find(CLOSE) else {
                return Err(("secret_misplaced", "an unclosed {{secret:".into()));
            };
            let value = self.value(&after[..end], place, to, used)?;
            out.push_str(&value);
            rest = &after[end + CLOSE.len()..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Fills the placeholders of the header values of a request to `to`.
    pub fn fill_headers(
        &self,
        headers: &mut HeaderMap,
        to: &reqwest::Url,
        used: &mut Used,
    ) -> Result<(), Refusal> {
        for (name, value) in headers.iter_mut() {
            let Ok(text) = value.to_str() else { continue };
            if !mentions(text) {
                continue;
            }
            let filled = self.fill(text, Place::Header(name.as_str()), to, used)?;
            let mut v = HeaderValue::from_str(&filled).map_err(|_| {
                (
                    "secret_misplaced",
                    "a secret's value cannot be a header value".to_string(),
                )
            })?;
            v.set_sensitive(true);
            *value = v;
        }
        Ok(())
    }

    /// `url` with the placeholders of its query values filled; one anywhere else is refused.
    pub fn fill_url(&self, url: &mut reqwest::Url, used: &mut Used) -> Result<(), Refusal> {
        let misplaced = |what: &str| {
            ("secret_misplaced", format!("a {{{{secret:…}}}} placeholder in the URL's {what}: secrets go only into header values and query values"))
        };
        let decoded_path = percent_decode(url.path());
        if mentions(&decoded_path) || mentions(url.host_str().unwrap_or_default()) {
            return Err(misplaced("host or path"));
        }
        if url.fragment().is_some_and(|f| mentions(&percent_decode(f)))
            || mentions(&percent_decode(url.username()))
            || url.password().is_some_and(|p| mentions(&percent_decode(p)))
        {
            return Err(misplaced("user or fragment"));
        }
        if !url.query().is_some_and(|q| mentions(&percent_decode(q))) {
            return Ok(());
        }
        let to = url.clone();
        let mut pairs = Vec::new();
        for (k, v) in url.query_pairs() {
            if mentions(&k) {
                return Err(misplaced("query keys"));
            }
            let v = if mentions(&v) {
                self.fill(&v, Place::Query(&k), &to, used)?
            } else {
                Zeroizing::new(v.into_owned())
            };
            pairs.push((k.into_owned(), v));
        }
        url.query_pairs_mut()
            .clear()
            .extend_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        Ok(())
    }
}

impl Used {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `bytes` with every value used replaced by its placeholder.
    pub fn scrub(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for (name, value) in &self.0 {
            let value = value.as_bytes();
            if value.is_empty() {
                continue;
            }
            let placeholder = format!("{OPEN}{name}{CLOSE}");
            let mut next = Vec::with_capacity(out.len());
            let mut i = 0;
            while i < out.len() {
                if out[i..].starts_with(value) {
                    next.extend_from_slice(placeholder.as_bytes());
                    i += value.len();
                } else {
                    next.push(out[i]);
                    i += 1;
                }
            }
            out = next;
        }
        out
    }

    /// `text` scrubbed.
    pub fn scrub_text(&self, text: &str) -> String {
        String::from_utf8_lossy(&self.scrub(text.as_bytes())).into_owned()
    }

    /// Header values scrubbed.
    pub fn scrub_headers(&self, headers: &mut HeaderMap) {
        for value in headers.values_mut() {
            let scrubbed = self.scrub(value.as_bytes());
            if scrubbed != value.as_bytes() {
                if let Ok(v) = HeaderValue::from_bytes(&scrubbed) {
                    *value = v;
                }
            }
        }
    }
}

/// `%XX` decoded (lossy), for finding placeholders however the module encoded them.
fn percent_decode(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct One;
    impl SecretSource for One {
        fn secret(&self, tenant: &str, name: &str) -> Option<Zeroizing<String>> {
            (tenant == "t" && name == "KEY").then(|| Zeroizing::new("s3cr3t".to_string()))
        }
    }

    fn secrets(granted: &[&str]) -> Secrets {
        Secrets {
            tenant: "t".into(),
            granted: granted
                .iter()
                .flat_map(|s| {
                    [
                        SecretGrant::query(s, "key"),
                        SecretGrant::header(s, "authorization"),
                    ]
                })
                .collect(),
            source: Some(Arc::new(One)),
        }
    }

    fn parse(text: &str) -> reqwest::Url {
        reqwest::Url::parse(text).expect(text)
    }

    #[test]
    fn placeholders_fill_only_granted_names_in_query_values_and_headers() {
        let s = secrets(&["KEY"]);
        let to = parse("https://api.example.com/v1");
        let mut used = Used::default();
        let mut url =
            reqwest::Url::parse("https://api.example.com/v1?q=ada&key=%7B%7Bsecret:KEY%7D%7D")
                .expect("url");
        s.fill_url(&mut url, &mut used).expect("filled");
        assert_eq!(url.query(), Some("q=ada&key=s3cr3t"));
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_static("Bearer {{secret:KEY}}"),
        );
        s.fill_headers(&mut h, &to, &mut used).expect("filled");
        assert_eq!(h["authorization"], "Bearer s3cr3t");
        assert_eq!(used.scrub_text("echo s3cr3t!"), "echo {{secret:KEY}}!");

        for bad in [
            "https://api.example.com/%7B%7Bsecret:KEY%7D%7D",
            "https://api.example.com/v1?%7B%7Bsecret:KEY%7D%7D=1",
            "https://api.example.com/v1#%7B%7Bsecret:KEY%7D%7D",
        ] {
            let mut url = reqwest::Url::parse(bad).expect(bad);
            let e = s.fill_url(&mut url, &mut Used::default()).expect_err(bad);
            assert_eq!(e.0, "secret_misplaced", "{bad}");
        }
        let key = Place::Query("key");
        let e = secrets(&[]).fill("{{secret:KEY}}", key, &to, &mut Used::default());
        assert_eq!(e.map(|_| ()).map_err(|e| e.0), Err("secret_not_granted"));
        let e = secrets(&["OTHER"]).fill("{{secret:OTHER}}", key, &to, &mut Used::default());
        assert_eq!(e.map(|_| ()).map_err(|e| e.0), Err("secret_missing"));
        // Only into the places its grant names: not another query value, not another header.
        for bad in [
            "https://api.example.com/v1?q=%7B%7Bsecret:KEY%7D%7D",
            "https://api.example.com/v1?key=x&q=%7B%7Bsecret:KEY%7D%7D",
        ] {
            let mut u = parse(bad);
            let e = s.fill_url(&mut u, &mut Used::default()).expect_err(bad);
            assert_eq!(e.0, "secret_misplaced", "{bad}");
            assert!(e.1.contains("query parameter q"), "{}", e.1);
        }
        let mut h = HeaderMap::new();
        h.insert("x-echo", HeaderValue::from_static("{{secret:KEY}}"));
        let e = s
            .fill_headers(&mut h, &to, &mut Used::default())
            .expect_err("x-echo");
        assert_eq!(e.0, "secret_misplaced");
        assert_eq!(h["x-echo"], "{{secret:KEY}}");
    }
}

//! enrich-lead: on lead creation, asks an enrichment service about the lead's email domain
//! (`GET {url}?domain=…`, `authorization: Bearer {{secret:…}}`), writes the company size
//! and industry it answers (`{"size": 1200, "industry": "software"}`) to the lead, and
//! scores it. The API key is a tenant secret: the module writes only its placeholder and the
//! host fills it in as the request leaves, so the module never holds the key.
//!
//! Config (every key optional but `url`):
//! ```json
//! {"url": "https://enrich.example.com/v1/companies", "key_secret": "ENRICH_KEY",
//!  "industry_points": {"software": 20}, "size_points": [{"min": 1000, "points": 30}],
//!  "score_field": "score"}
//! ```
//! Grants needed: fields `company_size`, `industry` and the score field; `http` with the
//! service's host as a destination and `key_secret` granted for the `authorization` header
//! (`{"name": "ENRICH_KEY", "header": "authorization"}`). A failed call (the service down, a
//! refusal) is logged and the lead is scored from what it has. The call goes through
//! `stagecraft_sdk::http`.

use std::collections::BTreeMap;

use serde::Deserialize;
use stagecraft_sdk::http;
use stagecraft_sdk::prelude::*;

/// Points for a company of at least `min` people.
#[derive(Debug, Deserialize, Clone, ConfigSchema)]
pub struct SizeRule {
    pub min: u64,
    pub points: i64,
}

/// Where enrich-lead asks, and how it scores.
#[derive(Debug, Deserialize, Clone, ConfigSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The enrichment endpoint; the domain goes in its `domain` query parameter.
    pub url: String,
    /// The tenant secret holding the service's API key (default "ENRICH_KEY").
    pub key_secret: String,
    /// Points per industry, e.g. {"software": 20}.
    pub industry_points: BTreeMap<String, i64>,
    /// First rule (highest `min` first) the company size reaches wins.
    pub size_points: Vec<SizeRule>,
    /// The custom field the score is written to (default "score").
    pub score_field: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: String::new(),
            key_secret: "ENRICH_KEY".into(),
            industry_points: BTreeMap::from([("software".into(), 20), ("finance".into(), 10)]),
            size_points: vec![
                SizeRule {
                    min: 1000,
                    points: 30,
                },
                SizeRule {
                    min: 100,
                    points: 15,
                },
            ],
            score_field: "score".into(),
        }
    }
}

/// What the enrichment service says about a company.
#[derive(Debug, Deserialize, Clone, Default, PartialEq)]
pub struct Company {
    pub size: Option<u64>,
    pub industry: Option<String>,
}

/// The score for what is known of the company.
pub fn score(config: &Config, company: &Company) -> i64 {
    let mut rules = config.size_points.clone();
    rules.sort_by_key(|r| std::cmp::Reverse(r.min));
    let size = company
        .size
        .and_then(|s| rules.iter().find(|r| s >= r.min))
        .map_or(0, |r| r.points);
    let industry = company
        .industry
        .as_ref()
        .and_then(|i| config.industry_points.get(&i.to_ascii_lowercase()))
        .copied()
        .unwrap_or(0);
    size + industry
}

/// The request enrich-lead makes: its URL and the authorization header, placeholder and
/// all.
pub fn request(config: &Config, domain: &str) -> (String, String) {
    let sep = if config.url.contains('?') { '&' } else { '?' };
    let domain: String = domain
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
        .collect();
    (
        format!("{}{sep}domain={domain}", config.url),
        format!("Bearer {{{{secret:{}}}}}", config.key_secret),
    )
}

pub struct EnrichLead;

impl Rule for EnrichLead {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<(), String> {
        let config: Config = ctx.config()?;
        let lead = event.record()?.clone();
        if lead.kind != RecordKind::Lead {
            return Ok(());
        }
        let domain = lead
            .email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d.to_ascii_lowercase());
        let mut company = Company::default();
        match (domain, config.url.is_empty()) {
            (Some(domain), false) => {
                let (url, authorization) = request(&config, &domain);
                let answer = http::get(url)
                    .header("authorization", authorization)
                    .header("accept", "application/json")
                    .send();
                match answer {
                    Ok(r) if r.status == 200 => match r.json::<Company>() {
                        Ok(c) => company = c,
                        Err(e) => ctx.warn(format!("the enrichment answer is not understood: {e}")),
                    },
                    Ok(r) => ctx.warn(format!("enrichment answered {}", r.status)),
                    Err(e) => ctx.warn(format!("enrichment failed: {e}")),
                }
            }
            (None, _) => ctx.info("no email domain to enrich from"),
            (_, true) => ctx.warn("no enrichment url configured"),
        }
        if let Some(size) = company.size {
            ctx.set_field(&lead.id, "company_size", &size)?;
        }
        if let Some(industry) = &company.industry {
            ctx.set_field(&lead.id, "industry", industry)?;
        }
        let points = score(&config, &company);
        ctx.info(format!("{} scores {points}", lead.id));
        ctx.set_field(&lead.id, &config.score_field, &points)?;
        Ok(())
    }
}

stagecraft_sdk::export_rule!(EnrichLead);
stagecraft_sdk::export_config_schema!(Config);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_from_size_and_industry() {
        let c = Config::default();
        let big_software = Company {
            size: Some(1200),
            industry: Some("Software".into()),
        };
        assert_eq!(score(&c, &big_software), 50);
        assert_eq!(
            score(
                &c,
                &Company {
                    size: Some(150),
                    industry: None
                }
            ),
            15
        );
        assert_eq!(score(&c, &Company::default()), 0);
    }

    #[test]
    fn the_request_carries_the_placeholder_never_a_key() {
        let c = Config {
            url: "https://enrich.example.com/v1/companies".into(),
            ..Config::default()
        };
        let (url, auth) = request(&c, "acme.io&evil=1");
        assert_eq!(
            url,
            "https://enrich.example.com/v1/companies?domain=acme.ioevil1"
        );
        assert_eq!(auth, "Bearer {{secret:ENRICH_KEY}}");
    }

    #[test]
    fn enriches_and_scores_from_the_answer_on_the_mock_host() {
        use stagecraft_sdk::http::{HttpError, Response};
        use stagecraft_sdk::testing::{self, MockHost};

        let config = serde_json::json!({"url": "https://enrich.example.com/v1/companies"});
        let mut lead = testing::lead("l1", "Ada", "leads", "new");
        lead.email = Some("ada@acme.io".into());
        let url = "https://enrich.example.com/v1/companies?domain=acme.io";
        let mut host = MockHost::new()
            .with_config_value(config)
            .with_http(
                "GET",
                url,
                Ok(Response::new(200, r#"{"size":1200,"industry":"software"}"#)),
            )
            .with_http("GET", url, Err(HttpError::Timeout));
        host.run::<EnrichLead>(&Event::created(lead.clone()))
            .expect("first run");
        let r = host.record("l1").expect("lead");
        assert_eq!(r.custom_field::<u64>("company_size"), Some(1200));
        assert_eq!(r.custom_field::<i64>("score"), Some(50));
        let sent = &host.http_sent()[0];
        assert_eq!(sent.url(), url);
        assert!(sent.headers().contains(&(
            "authorization".into(),
            "Bearer {{secret:ENRICH_KEY}}".into()
        )));
        // The service timing out: logged by name, and the lead is scored from what it has.
        host.run::<EnrichLead>(&Event::created(lead))
            .expect("second run");
        assert!(
            host.logs
                .iter()
                .any(|(_, l)| l == "enrichment failed: request_timeout"),
            "{:?}",
            host.logs
        );
    }
}

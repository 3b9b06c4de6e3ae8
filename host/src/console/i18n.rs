//! The console's languages: one Fluent catalogue per language (embedded in the binary), the
//! choice from a `lang` cookie or the browser's Accept-Language, and dates and numbers written
//! the way the chosen locale writes them.

use std::collections::HashMap;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use num_format::{Locale, ToFormattedString};
use unic_langid::LanguageIdentifier;

/// A language the console speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    En,
    Es,
    Pt,
    Pl,
}

/// Every language, in the order the switch shows them.
pub const ALL: [Lang; 4] = [Lang::En, Lang::Es, Lang::Pt, Lang::Pl];

/// The catalogue sources, embedded so the binary needs no files at run time.
pub fn source(lang: Lang) -> &'static str {
    match lang {
        Lang::En => include_str!("../../locales/en/console.ftl"),
        Lang::Es => include_str!("../../locales/es/console.ftl"),
        Lang::Pt => include_str!("../../locales/pt/console.ftl"),
        Lang::Pl => include_str!("../../locales/pl/console.ftl"),
    }
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
            Lang::Pt => "pt",
            Lang::Pl => "pl",
        }
    }

    /// The language's own name, for the switch.
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Es => "Español",
            Lang::Pt => "Português",
            Lang::Pl => "Polski",
        }
    }

    pub fn from_code(code: &str) -> Option<Lang> {
        let primary = code.split(['-', '_']).next().unwrap_or("").trim();
        ALL.into_iter()
            .find(|l| l.code().eq_ignore_ascii_case(primary))
    }

    /// The best language for an Accept-Language header (highest q first, order breaking ties),
    /// English when none is offered.
    pub fn negotiate(accept_language: &str) -> Lang {
        let mut offers: Vec<(f32, usize, Lang)> = Vec::new();
        for (i, part) in accept_language.split(',').enumerate() {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or("").trim();
            let q = pieces
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if q <= 0.0 {
                continue;
            }
            if let Some(lang) = Lang::from_code(tag) {
                offers.push((q, i, lang));
            }
        }
        offers.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        offers.first().map(|o| o.2).unwrap_or(Lang::En)
    }

    fn locale(self) -> &'static Locale {
        match self {
            Lang::En => &Locale::en,
            Lang::Es => &Locale::es,
            Lang::Pt => &Locale::pt,
            Lang::Pl => &Locale::pl,
        }
    }

    /// A whole number with the locale's digit grouping: 1,234,567 / 1.234.567 / 1 234 567.
    pub fn number(self, n: u64) -> String {
        n.to_formatted_string(self.locale())
    }

    /// An amount with two decimals, grouped and with the locale's decimal separator.
    pub fn amount(self, v: f64) -> String {
        let cents = (v.abs() * 100.0).round() as u64;
        let sign = if v < 0.0 { "-" } else { "" };
        let decimal = if self == Lang::En { "." } else { "," };
        format!(
            "{sign}{}{decimal}{:02}",
            self.number(cents / 100),
            cents % 100
        )
    }

    /// A number with `places` decimals, grouped, with the locale's decimal separator.
    pub fn decimal(self, v: f64, places: u32) -> String {
        let scale = 10u64.pow(places);
        let scaled = (v.abs() * scale as f64).round() as u64;
        let sign = if v < 0.0 && scaled > 0 { "-" } else { "" };
        let whole = self.number(scaled / scale);
        if places == 0 {
            return format!("{sign}{whole}");
        }
        let decimal = if self == Lang::En { "." } else { "," };
        format!(
            "{sign}{whole}{decimal}{:0width$}",
            scaled % scale,
            width = places as usize
        )
    }

    /// A share as a percentage with one decimal: 12.5% / 12,5 % (the locale's spacing).
    pub fn percent(self, share: f64) -> String {
        let n = self.decimal(share * 100.0, 1);
        match self {
            Lang::En => format!("{n}%"),
            _ => format!("{n}\u{a0}%"),
        }
    }

    /// Day and month, as the locale writes them: 11/23 / 23/11 / 23.11.
    pub fn day_month(self, t: &DateTime<Utc>) -> String {
        let pattern = match self {
            Lang::En => "%m/%d",
            Lang::Es | Lang::Pt => "%d/%m",
            Lang::Pl => "%d.%m",
        };
        t.format(pattern).to_string()
    }

    /// A timestamp as the locale writes dates (UTC): 11/23/2026 14:05 / 23/11/2026 14:05 /
    /// 23.11.2026 14:05.
    pub fn datetime(self, t: &DateTime<Utc>) -> String {
        let pattern = match self {
            Lang::En => "%m/%d/%Y %H:%M:%S UTC",
            Lang::Es | Lang::Pt => "%d/%m/%Y %H:%M:%S UTC",
            Lang::Pl => "%d.%m.%Y %H:%M:%S UTC",
        };
        t.format(pattern).to_string()
    }
}

type Bundle = FluentBundle<FluentResource>;

/// Parses a catalogue into a bundle; an error names the language and the broken entries.
pub fn bundle(lang: Lang) -> Result<Bundle, String> {
    let resource = FluentResource::try_new(source(lang).to_string()).map_err(|(_, errors)| {
        format!(
            "catalogue {} does not parse: {:?}",
            lang.code(),
            errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
        )
    })?;
    let id: LanguageIdentifier = lang
        .code()
        .parse()
        .map_err(|e| format!("language {}: {e}", lang.code()))?;
    let mut bundle = FluentBundle::new_concurrent(vec![id]);
    bundle.set_use_isolating(false);
    bundle
        .add_resource(resource)
        .map_err(|e| format!("catalogue {}: {e:?}", lang.code()))?;
    Ok(bundle)
}

fn bundles() -> &'static HashMap<Lang, Bundle> {
    static BUNDLES: OnceLock<HashMap<Lang, Bundle>> = OnceLock::new();
    BUNDLES.get_or_init(|| {
        ALL.into_iter()
            .filter_map(|lang| match bundle(lang) {
                Ok(b) => Some((lang, b)),
                Err(e) => {
                    tracing::error!(error = %e, "console catalogue");
                    None
                }
            })
            .collect()
    })
}

/// The message `key` in `lang` with `args`; falls back to English, then to the key itself
/// (a unit test keeps every catalogue complete, so the fallbacks never show in practice).
pub fn text(lang: Lang, key: &str, args: &[(&str, String)]) -> String {
    let all = bundles();
    for l in [lang, Lang::En] {
        let Some(bundle) = all.get(&l) else { continue };
        let Some(pattern) = bundle.get_message(key).and_then(|m| m.value()) else {
            continue;
        };
        let mut fargs = FluentArgs::new();
        for (k, v) in args {
            fargs.set(*k, FluentValue::from(v.clone()));
        }
        let mut errors = Vec::new();
        return bundle
            .format_pattern(pattern, Some(&fargs), &mut errors)
            .into_owned();
    }
    key.to_string()
}

/// The message ids a catalogue defines.
pub fn keys(lang: Lang) -> Result<Vec<String>, String> {
    let resource = FluentResource::try_new(source(lang).to_string())
        .map_err(|_| format!("catalogue {} does not parse", lang.code()))?;
    Ok(resource
        .entries()
        .filter_map(|e| match e {
            fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_string()),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_catalogue_parses_and_has_exactly_the_english_keys() {
        let english: std::collections::BTreeSet<String> =
            keys(Lang::En).unwrap().into_iter().collect();
        assert!(english.len() > 50, "{}", english.len());
        for lang in ALL {
            bundle(lang).unwrap();
            let theirs: std::collections::BTreeSet<String> =
                keys(lang).unwrap().into_iter().collect();
            let missing: Vec<_> = english.difference(&theirs).collect();
            let stray: Vec<_> = theirs.difference(&english).collect();
            assert!(missing.is_empty(), "{} misses {missing:?}", lang.code());
            assert!(stray.is_empty(), "{} has stray keys {stray:?}", lang.code());
        }
    }

    #[test]
    fn translations_are_not_english_copies() {
        for lang in [Lang::Es, Lang::Pt, Lang::Pl] {
            let same = keys(Lang::En)
                .unwrap()
                .into_iter()
                .filter(|k| text(lang, k, &[]) == text(Lang::En, k, &[]))
                .count();
            assert!(
                same < 8,
                "{}: {same} messages identical to English",
                lang.code()
            );
        }
    }

    #[test]
    fn accept_language_picks_the_best_supported_language() {
        assert_eq!(Lang::negotiate("es-ES,es;q=0.9,en;q=0.8"), Lang::Es);
        assert_eq!(Lang::negotiate("fr-FR, pt-BR;q=0.7, en;q=0.5"), Lang::Pt);
        assert_eq!(Lang::negotiate("en;q=0.2, pl;q=0.9"), Lang::Pl);
        assert_eq!(Lang::negotiate("de, fr"), Lang::En);
        assert_eq!(Lang::negotiate("pl;q=0, es"), Lang::Es);
        assert_eq!(Lang::negotiate(""), Lang::En);
    }

    #[test]
    fn numbers_and_dates_follow_the_locale() {
        assert_eq!(Lang::En.number(1234567), "1,234,567");
        assert_eq!(Lang::Es.number(1234567), "1.234.567");
        assert_eq!(Lang::Pt.number(1234567), "1.234.567");
        assert_eq!(Lang::Pl.number(1234567), "1\u{a0}234\u{a0}567");
        assert_eq!(Lang::En.amount(1234.5), "1,234.50");
        assert_eq!(Lang::Pl.amount(1234.5), "1\u{a0}234,50");
        let t = DateTime::parse_from_rfc3339("2026-11-23T14:05:09Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(Lang::En.datetime(&t), "11/23/2026 14:05:09 UTC");
        assert_eq!(Lang::Es.datetime(&t), "23/11/2026 14:05:09 UTC");
        assert_eq!(Lang::Pl.datetime(&t), "23.11.2026 14:05:09 UTC");
        assert_eq!(Lang::En.day_month(&t), "11/23");
        assert_eq!(Lang::Pt.day_month(&t), "23/11");
        assert_eq!(Lang::Pl.day_month(&t), "23.11");
        assert_eq!(Lang::En.decimal(1234.567, 2), "1,234.57");
        assert_eq!(Lang::Es.decimal(0.05, 1), "0,1");
        assert_eq!(Lang::Pl.decimal(-2.0, 0), "-2");
        assert_eq!(Lang::En.percent(0.125), "12.5%");
        assert_eq!(Lang::Es.percent(0.125), "12,5\u{a0}%");
    }

    #[test]
    fn arguments_fill_placeholders() {
        let s = text(
            Lang::Es,
            "flash-moved",
            &[("name", "Ana".into()), ("stage", "Won".into())],
        );
        assert!(s.contains("Ana") && s.contains("Won"), "{s}");
    }
}

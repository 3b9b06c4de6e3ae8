//! A rule's config schema: a JSON Schema for the binding config the rule reads, derived from
//! the Rust type it deserializes into and embedded in the component as the custom section
//! `stagecraft:config-schema`.
//!
//! The host reads the section at upload, keeps it with the version, refuses binding configs
//! that do not match it (422 naming the JSON path) and renders the console's config form from
//! it. The schema is built at compile time — [`ConfigSchema`] describes a type as a `const`
//! tree, and [`export_config_schema!`](crate::export_config_schema) writes that tree out as
//! JSON bytes in a `static` placed in the section — so nothing runs at startup and nothing is
//! added to the rule's code path.
//!
//! ```
//! use serde::Deserialize;
//! use stagecraft_sdk::ConfigSchema;
//!
//! #[derive(Deserialize, ConfigSchema, Default)]
//! #[serde(default, deny_unknown_fields)]
//! struct Config {
//!     /// Score at which a lead qualifies.
//!     #[config(minimum = 0, maximum = 100)]
//!     threshold: i64,
//!     /// Who gets qualified leads, in turn.
//!     team: Vec<String>,
//!     mode: Mode,
//! }
//!
//! #[derive(Deserialize, ConfigSchema, Default)]
//! #[serde(rename_all = "snake_case")]
//! enum Mode {
//!     #[default]
//!     RoundRobin,
//!     LeastBusy,
//! }
//!
//! let schema: serde_json::Value =
//!     serde_json::from_str(&stagecraft_sdk::config_schema::to_json::<Config>()).unwrap();
//! assert_eq!(schema["properties"]["threshold"]["maximum"], 100);
//! assert_eq!(schema["properties"]["mode"]["enum"][1], "least_busy");
//! assert_eq!(schema["additionalProperties"], false);
//! // In the rule's `cdylib` crate, next to `export_rule!`:
//! // stagecraft_sdk::export_config_schema!(Config);
//! ```
//!
//! What the derive understands: structs with named fields and enums of unit variants (as
//! strings); serde's `default`, `deny_unknown_fields`, `rename`, `rename_all` and `skip`;
//! doc comments as descriptions; `#[config(minimum = N, maximum = N)]` on number fields.
//! `Option<T>` and defaulted fields are optional, every other field is required.

use std::collections::{BTreeMap, HashMap};

/// A JSON Schema, as a compile-time tree.
#[derive(Debug)]
pub enum Schema {
    /// Any JSON value.
    Any,
    Boolean,
    String,
    Integer {
        minimum: Option<i64>,
        maximum: Option<i64>,
    },
    Number {
        minimum: Option<i64>,
        maximum: Option<i64>,
    },
    Array {
        items: &'static Schema,
    },
    /// An object with any keys, each value of one schema.
    Map {
        values: &'static Schema,
    },
    /// An object with named properties; `closed` refuses other keys.
    Object {
        description: &'static str,
        fields: &'static [Field],
        closed: bool,
    },
    /// One of these strings.
    Enum {
        description: &'static str,
        values: &'static [&'static str],
    },
}

/// One property of an [`Schema::Object`].
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub schema: &'static Schema,
    pub required: bool,
    /// From the field's doc comment ("" for none).
    pub description: &'static str,
    /// `#[config(minimum = …)]`, for numbers.
    pub minimum: Option<i64>,
    pub maximum: Option<i64>,
}

/// A type whose JSON Schema is known at compile time. Derive it with
/// `#[derive(ConfigSchema)]`; the SDK implements it for strings, numbers, booleans,
/// `Option`, `Vec`, `Box`, string-keyed maps and `serde_json::Value`.
pub trait ConfigSchema {
    const SCHEMA: &'static Schema;
}

macro_rules! leaf {
    ($schema:expr => $($t:ty),*) => {$(
        impl ConfigSchema for $t {
            const SCHEMA: &'static Schema = &$schema;
        }
    )*};
}

leaf!(Schema::String => String, char);
leaf!(Schema::Boolean => bool);
leaf!(Schema::Integer { minimum: None, maximum: None } => i8, i16, i32, i64, isize);
leaf!(Schema::Integer { minimum: Some(0), maximum: None } => u8, u16, u32, u64, usize);
leaf!(Schema::Number { minimum: None, maximum: None } => f32, f64);
leaf!(Schema::Any => serde_json::Value);

impl<T: ConfigSchema> ConfigSchema for Option<T> {
    const SCHEMA: &'static Schema = T::SCHEMA;
}

impl<T: ConfigSchema> ConfigSchema for Box<T> {
    const SCHEMA: &'static Schema = T::SCHEMA;
}

impl<T: ConfigSchema> ConfigSchema for Vec<T> {
    const SCHEMA: &'static Schema = &Schema::Array { items: T::SCHEMA };
}

impl<T: ConfigSchema> ConfigSchema for BTreeMap<String, T> {
    const SCHEMA: &'static Schema = &Schema::Map { values: T::SCHEMA };
}

impl<T: ConfigSchema, S> ConfigSchema for HashMap<String, T, S> {
    const SCHEMA: &'static Schema = &Schema::Map { values: T::SCHEMA };
}

/// What a property adds to its type's schema.
#[derive(Clone, Copy)]
struct Extra {
    description: &'static str,
    minimum: Option<i64>,
    maximum: Option<i64>,
    root: bool,
}

const NONE: Extra = Extra {
    description: "",
    minimum: None,
    maximum: None,
    root: false,
};

/// Writes `s` at `at` (as far as `buf` reaches) and returns where it ends: with an empty
/// `buf` this only measures.
const fn put(buf: &mut [u8], at: usize, s: &[u8]) -> usize {
    let mut i = 0;
    while i < s.len() {
        if at + i < buf.len() {
            buf[at + i] = s[i];
        }
        i += 1;
    }
    at + s.len()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A JSON string literal.
const fn string(buf: &mut [u8], at: usize, s: &str) -> usize {
    let bytes = s.as_bytes();
    let mut at = put(buf, at, b"\"");
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        at = match b {
            b'"' => put(buf, at, b"\\\""),
            b'\\' => put(buf, at, b"\\\\"),
            b'\n' => put(buf, at, b"\\n"),
            b'\r' => put(buf, at, b"\\r"),
            b'\t' => put(buf, at, b"\\t"),
            0..=0x1f => {
                let at = put(buf, at, b"\\u00");
                put(buf, at, &[HEX[(b >> 4) as usize], HEX[(b & 15) as usize]])
            }
            _ => put(buf, at, &[b]),
        };
        i += 1;
    }
    put(buf, at, b"\"")
}

/// A decimal integer.
const fn integer(buf: &mut [u8], at: usize, v: i64) -> usize {
    let mut digits = [0u8; 20];
    let mut n = (v as i128).unsigned_abs();
    let mut len = 0;
    loop {
        digits[19 - len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let at = if v < 0 { put(buf, at, b"-") } else { at };
    let mut out = at;
    let mut i = 20 - len;
    while i < 20 {
        out = put(buf, out, &[digits[i]]);
        i += 1;
    }
    out
}

/// Writes `,` unless this is the object's first member.
const fn sep(buf: &mut [u8], at: usize, first: &mut bool) -> usize {
    if *first {
        *first = false;
        at
    } else {
        put(buf, at, b",")
    }
}

const fn bounds(
    buf: &mut [u8],
    at: usize,
    first: &mut bool,
    min: Option<i64>,
    max: Option<i64>,
) -> usize {
    let mut at = at;
    if let Some(m) = min {
        at = sep(buf, at, first);
        at = put(buf, at, b"\"minimum\":");
        at = integer(buf, at, m);
    }
    if let Some(m) = max {
        at = sep(buf, at, first);
        at = put(buf, at, b"\"maximum\":");
        at = integer(buf, at, m);
    }
    at
}

const fn either(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match a {
        Some(_) => a,
        None => b,
    }
}

const fn write(buf: &mut [u8], at: usize, s: &Schema, extra: Extra) -> usize {
    let mut at = put(buf, at, b"{");
    let first = &mut true;
    if extra.root {
        at = sep(buf, at, first);
        at = put(
            buf,
            at,
            b"\"$schema\":\"https://json-schema.org/draft/2020-12/schema\"",
        );
    }
    let own_description = match s {
        Schema::Object { description, .. } | Schema::Enum { description, .. } => description,
        _ => "",
    };
    let description = if extra.description.is_empty() {
        own_description
    } else {
        extra.description
    };
    if !description.is_empty() {
        at = sep(buf, at, first);
        at = put(buf, at, b"\"description\":");
        at = string(buf, at, description);
    }
    match s {
        Schema::Any => {}
        Schema::Boolean => {
            at = sep(buf, at, first);
            at = put(buf, at, b"\"type\":\"boolean\"");
        }
        Schema::String => {
            at = sep(buf, at, first);
            at = put(buf, at, b"\"type\":\"string\"");
        }
        Schema::Integer { minimum, maximum } => {
            at = sep(buf, at, first);
            at = put(buf, at, b"\"type\":\"integer\"");
            let (min, max) = (
                either(extra.minimum, *minimum),
                either(extra.maximum, *maximum),
            );
            at = bounds(buf, at, first, min, max);
        }
        Schema::Number { minimum, maximum } => {
            at = sep(buf, at, first);
            at = put(buf, at, b"\"type\":\"number\"");
            let (min, max) = (
                either(extra.minimum, *minimum),
                either(extra.maximum, *maximum),
            );
            at = bounds(buf, at, first, min, max);
        }
        Schema::Array { items } => {
            at = sep(buf, at, first);
            at = put(buf, at, b"\"type\":\"array\",\"items\":");
            at = write(buf, at, items, NONE);
        }
        Schema::Map { values } => {
            at = sep(buf, at, first);
            at = put(buf, at, b"\"type\":\"object\",\"additionalProperties\":");
            at = write(buf, at, values, NONE);
        }
        Schema::Enum { values, .. } => {
            at = sep(buf, at, first);
            at = put(buf, at, b"\"type\":\"string\",\"enum\":[");
            let mut i = 0;
            while i < values.len() {
                if i > 0 {
                    at = put(buf, at, b",");
                }
                at = string(buf, at, values[i]);
                i += 1;
            }
            at = put(buf, at, b"]");
        }
        Schema::Object { fields, closed, .. } => {
            at = sep(buf, at, first);
            at = put(buf, at, b"\"type\":\"object\",\"properties\":{");
            let mut i = 0;
            while i < fields.len() {
                let f = &fields[i];
                if i > 0 {
                    at = put(buf, at, b",");
                }
                at = string(buf, at, f.name);
                at = put(buf, at, b":");
                let extra = Extra {
                    description: f.description,
                    minimum: f.minimum,
                    maximum: f.maximum,
                    root: false,
                };
                at = write(buf, at, f.schema, extra);
                i += 1;
            }
            at = put(buf, at, b"},\"required\":[");
            let mut i = 0;
            let mut none_yet = true;
            while i < fields.len() {
                if fields[i].required {
                    if !none_yet {
                        at = put(buf, at, b",");
                    }
                    none_yet = false;
                    at = string(buf, at, fields[i].name);
                }
                i += 1;
            }
            at = put(buf, at, b"]");
            if *closed {
                at = put(buf, at, b",\"additionalProperties\":false");
            }
        }
    }
    put(buf, at, b"}")
}

const ROOT: Extra = Extra {
    description: "",
    minimum: None,
    maximum: None,
    root: true,
};

/// The length of `schema` written as JSON (what [`json`] needs as `N`).
pub const fn json_len(schema: &Schema) -> usize {
    write(&mut [], 0, schema, ROOT)
}

/// `schema` as JSON bytes, at compile time; `N` must be [`json_len`] of it.
pub const fn json<const N: usize>(schema: &Schema) -> [u8; N] {
    let mut buf = [0u8; N];
    write(&mut buf, 0, schema, ROOT);
    buf
}

/// `T`'s schema as a JSON string: what
/// [`export_config_schema!`](crate::export_config_schema) embeds (for tests and tooling).
pub fn to_json<T: ConfigSchema + ?Sized>() -> String {
    let mut buf = vec![0u8; json_len(T::SCHEMA)];
    write(&mut buf, 0, T::SCHEMA, ROOT);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Embeds `$config`'s [`ConfigSchema`] in the component as the custom section
/// `stagecraft:config-schema`, for the host to validate binding configs with and the console
/// to build its form from. Use it once, next to
/// [`export_rule!`](crate::export_rule):
///
/// ```no_run
/// # use stagecraft_sdk::prelude::*;
/// #[derive(serde::Deserialize, ConfigSchema, Default)]
/// #[serde(default)]
/// struct Config {
///     threshold: i64,
/// }
/// # pub struct Noop;
/// # impl Rule for Noop {
/// #     fn handle(_ctx: &mut Ctx<'_>, _event: &Event) -> Result<(), String> { Ok(()) }
/// # }
/// stagecraft_sdk::export_rule!(Noop);
/// stagecraft_sdk::export_config_schema!(Config);
/// ```
#[macro_export]
macro_rules! export_config_schema {
    ($config:ty) => {
        const _: () = {
            const __STAGECRAFT_SCHEMA_LEN: usize = $crate::config_schema::json_len(
                <$config as $crate::config_schema::ConfigSchema>::SCHEMA,
            );
            #[allow(unsafe_code)]
            #[cfg_attr(target_family = "wasm", link_section = "stagecraft:config-schema")]
            #[used]
            static __STAGECRAFT_CONFIG_SCHEMA: [u8; __STAGECRAFT_SCHEMA_LEN] =
                $crate::config_schema::json::<__STAGECRAFT_SCHEMA_LEN>(
                    <$config as $crate::config_schema::ConfigSchema>::SCHEMA,
                );
        };
    };
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::{json, Value};

    fn parse(s: &Schema) -> Value {
        let mut buf = vec![0u8; json_len(s)];
        write(&mut buf, 0, s, ROOT);
        serde_json::from_slice(&buf).unwrap()
    }

    #[test]
    fn strings_and_numbers_are_written_as_json() {
        const S: Schema = Schema::Object {
            description: "quote \" backslash \\ line\nbreak \u{1} ünï",
            closed: true,
            fields: &[
                Field {
                    name: "n\"ame",
                    schema: &Schema::Integer {
                        minimum: Some(0),
                        maximum: None,
                    },
                    required: true,
                    description: "",
                    minimum: Some(i64::MIN),
                    maximum: Some(-7),
                },
                Field {
                    name: "tags",
                    schema: <Vec<String> as ConfigSchema>::SCHEMA,
                    required: false,
                    description: "Tags.",
                    minimum: None,
                    maximum: None,
                },
            ],
        };
        let v = parse(&S);
        assert_eq!(
            v["description"],
            "quote \" backslash \\ line\nbreak \u{1} ünï"
        );
        assert_eq!(v["properties"]["n\"ame"]["minimum"], i64::MIN);
        assert_eq!(v["properties"]["n\"ame"]["maximum"], -7);
        assert_eq!(
            v["properties"]["tags"],
            json!({"description": "Tags.", "type": "array", "items": {"type": "string"}})
        );
        assert_eq!(v["required"], json!(["n\"ame"]));
        assert_eq!(v["additionalProperties"], false);
        assert!(v["$schema"].as_str().unwrap().contains("2020-12"));
    }

    #[test]
    fn containers_nest() {
        let v = parse(<BTreeMap<String, Vec<Option<u32>>> as ConfigSchema>::SCHEMA);
        assert_eq!(v["type"], "object");
        assert_eq!(
            v["additionalProperties"],
            json!({"type": "array", "items": {"type": "integer", "minimum": 0}})
        );
        let v = parse(<Value as ConfigSchema>::SCHEMA);
        assert_eq!(v.as_object().unwrap().len(), 1, "only $schema: {v}");
    }
}

//! The shape of every JSON value a tenant or a module stores: how deep it may nest and how
//! large it may be. One copy, checked on every write path (record fields from the API and
//! from modules, inbound event payloads, follow-up payloads, binding configs) and by the
//! SDK's `MockHost`.
//!
//! Why a depth limit: stored values are wrapped a few levels deeper (a custom field sits in a
//! record, the record in an event's snapshot, the event in a run record), and a JSON parser
//! refuses documents past its recursion limit (serde_json's is 128). A value accepted at 125
//! levels became unreadable once stored. With at most [`MAX_DEPTH`] levels every stored form
//! stays far below that, so whatever was accepted can always be read back.

use serde_json::{Map, Value};

/// Nesting levels a value may have: `1` and `"a"` have depth 0, `[]` and `{}` depth 1,
/// `{"a": [1]}` depth 2. Real data rarely goes past 5; Elasticsearch refuses mappings past 20.
pub const MAX_DEPTH: usize = 32;

/// Bytes of compact JSON one value may take (a field value, an event or follow-up payload,
/// a binding's config). HubSpot allows 65,536 characters per property value.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Bytes of compact JSON a record's custom fields may take together. The core fields are
/// limited one by one (at most about 1.5 KiB), so a whole record stays under about 260 KiB.
pub const MAX_CUSTOM_BYTES: usize = 256 * 1024;

/// Why a value was refused. The messages name the limit and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueError {
    TooDeep {
        what: String,
        depth: usize,
    },
    TooLarge {
        what: String,
        bytes: usize,
        max: usize,
    },
}

impl std::fmt::Display for ValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueError::TooDeep { what, depth } => write!(
                f,
                "{what} nests {depth} levels deep; the limit is {MAX_DEPTH} levels of arrays and objects"
            ),
            ValueError::TooLarge { what, bytes, max } => write!(
                f,
                "{what} is {} bytes of JSON; the limit is {max} bytes ({} KiB)",
                if *bytes > *max {
                    format!("more than {max}")
                } else {
                    bytes.to_string()
                },
                max / 1024
            ),
        }
    }
}

impl std::error::Error for ValueError {}

/// How many levels of arrays and objects `v` nests (without recursion, so any value is safe
/// to measure).
pub fn depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(v, 0)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(a) => {
                deepest = deepest.max(d + 1);
                stack.extend(a.iter().map(|x| (x, d + 1)));
            }
            Value::Object(o) => {
                deepest = deepest.max(d + 1);
                stack.extend(o.values().map(|x| (x, d + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// Counts bytes and gives up once past a maximum, so measuring a huge value costs no more
/// than the maximum.
struct Counter {
    bytes: usize,
    max: usize,
}

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes += buf.len();
        if self.bytes > self.max {
            return Err(std::io::Error::other("over the limit"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The size of `v` as compact JSON, or None once it exceeds `max`.
pub fn size_within(v: &impl serde::Serialize, max: usize) -> Option<usize> {
    let mut c = Counter { bytes: 0, max };
    serde_json::to_writer(&mut c, v).ok().map(|_| c.bytes)
}

/// Checks `v` (described by `what`, e.g. `the value of field "score"`) against
/// [`MAX_DEPTH`] and [`MAX_VALUE_BYTES`].
pub fn check(what: &str, v: &Value) -> Result<(), ValueError> {
    let d = depth(v);
    if d > MAX_DEPTH {
        return Err(ValueError::TooDeep {
            what: what.to_string(),
            depth: d,
        });
    }
    match size_within(v, MAX_VALUE_BYTES) {
        Some(_) => Ok(()),
        None => Err(ValueError::TooLarge {
            what: what.to_string(),
            bytes: MAX_VALUE_BYTES + 1,
            max: MAX_VALUE_BYTES,
        }),
    }
}

/// Checks a record's custom fields together against [`MAX_CUSTOM_BYTES`] (each field's
/// value was checked by [`check`] when it was written).
pub fn check_custom(custom: &Map<String, Value>) -> Result<(), ValueError> {
    match size_within(custom, MAX_CUSTOM_BYTES) {
        Some(_) => Ok(()),
        None => Err(ValueError::TooLarge {
            what: "the record's custom fields together".into(),
            bytes: MAX_CUSTOM_BYTES + 1,
            max: MAX_CUSTOM_BYTES,
        }),
    }
}

/// A value nested `levels` deep (`[[[…0…]]]`), for tests on both sides of the limit.
pub fn nested(levels: usize) -> Value {
    let mut v = Value::from(0);
    for _ in 0..levels {
        v = Value::Array(vec![v]);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_counts_levels_of_arrays_and_objects() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!([])), 1);
        assert_eq!(depth(&json!({"a": [1, {"b": 2}]})), 3);
        assert_eq!(depth(&nested(MAX_DEPTH)), MAX_DEPTH);
        // Measuring never recurses: deeper than any parser allows is fine.
        assert_eq!(depth(&nested(1_000)), 1_000);
    }

    #[test]
    fn values_past_the_limits_are_named() {
        assert!(check("x", &nested(MAX_DEPTH)).is_ok());
        let e = check("the value of field \"deep\"", &nested(MAX_DEPTH + 1)).unwrap_err();
        assert!(matches!(e, ValueError::TooDeep { depth: 33, .. }));
        let text = e.to_string();
        assert!(
            text.contains("field \"deep\"") && text.contains("limit is 32"),
            "{text}"
        );

        let big = Value::String("x".repeat(MAX_VALUE_BYTES));
        let e = check("the payload", &big).unwrap_err();
        assert!(e.to_string().contains("65536"), "{e}");
        assert!(check("ok", &Value::String("x".repeat(MAX_VALUE_BYTES - 2))).is_ok());

        let mut custom = Map::new();
        for i in 0..5 {
            custom.insert(format!("f{i}"), Value::String("y".repeat(60_000)));
        }
        assert!(check_custom(&custom)
            .unwrap_err()
            .to_string()
            .contains("custom fields together"));
        custom.remove("f4");
        assert!(check_custom(&custom).is_ok());
    }
}

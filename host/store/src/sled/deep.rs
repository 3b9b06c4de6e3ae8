//! Reading values stored before the depth limit existed. Older versions accepted JSON values
//! up to serde_json's parse limit (127 levels) and stored them wrapped a few levels deeper,
//! where the same parser refuses to read them back ("recursion limit exceeded"): a record,
//! its events and its runs answered 500 for good. Such a stored value is decoded again by a
//! parser without recursion — after a scan has shown it nests at most [`MAX_STORED_DEPTH`]
//! levels, which no version ever wrote more than, so turning the result into typed values
//! (which does recurse) keeps a bounded stack. New writes never need this:
//! `stagecraft_rules::value` keeps values to 32 levels.
//!
//! Why not serde_stacker (serde_json without the limit, growing the stack on demand)? It
//! needs serde_json's `unbounded_depth` feature, which rebuilds serde_json and everything
//! above it, and the `stacker` crate's C and assembly build — for a path only legacy data
//! takes, whose depth is bounded anyway.

use serde::de::{DeserializeOwned, Error as _};
use serde_json::{Map, Value};

/// Deepest stored document older versions could write: a value parsed at 127 levels, inside
/// a record inside an event inside a run record, with room to spare.
pub const MAX_STORED_DEPTH: usize = 160;

/// True when decoding failed only because the document nests past serde_json's limit.
pub fn too_deep(e: &serde_json::Error) -> bool {
    e.is_syntax() && e.to_string().contains("recursion limit exceeded")
}

/// How deep `json` nests arrays and objects (strings skipped), without parsing it.
pub fn nesting(json: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Decodes a stored document that nests past serde_json's limit but no deeper than
/// [`MAX_STORED_DEPTH`]; None when it is deeper (then it is corrupt, not legacy).
pub fn decode<T: DeserializeOwned>(json: &[u8]) -> Option<Result<T, serde_json::Error>> {
    if nesting(json) > MAX_STORED_DEPTH {
        return None;
    }
    Some(parse(json).and_then(serde_json::from_value))
}

/// A container being filled: an array, or an object with the key of its next value.
enum Open {
    Array(Vec<Value>),
    Object(Map<String, Value>, String),
}

struct Parser<'a> {
    json: &'a [u8],
    at: usize,
}

fn fail(what: &str, at: usize) -> serde_json::Error {
    serde_json::Error::custom(format!("{what} at byte {at}"))
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self
            .json
            .get(self.at)
            .is_some_and(|b| b.is_ascii_whitespace())
        {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.json.get(self.at).copied()
    }

    /// A string, number or literal, parsed by serde_json (leaves never recurse).
    fn leaf(&mut self) -> Result<Value, serde_json::Error> {
        let start = self.at;
        if self.json.get(start) == Some(&b'"') {
            let mut escaped = false;
            self.at += 1;
            loop {
                let Some(&b) = self.json.get(self.at) else {
                    return Err(fail("unterminated string", start));
                };
                self.at += 1;
                match b {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => break,
                    _ => {}
                }
            }
        } else {
            while self
                .json
                .get(self.at)
                .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.'))
            {
                self.at += 1;
            }
        }
        serde_json::from_slice(&self.json[start..self.at])
    }

    fn key(&mut self) -> Result<String, serde_json::Error> {
        if self.peek() != Some(b'"') {
            return Err(fail("expected an object key", self.at));
        }
        let key = match self.leaf()? {
            Value::String(k) => k,
            _ => return Err(fail("expected an object key", self.at)),
        };
        if self.peek() != Some(b':') {
            return Err(fail("expected ':'", self.at));
        }
        self.at += 1;
        Ok(key)
    }
}

/// Parses a JSON document into a [`Value`] with an explicit stack instead of recursion.
fn parse(json: &[u8]) -> Result<Value, serde_json::Error> {
    let mut p = Parser { json, at: 0 };
    let mut open: Vec<Open> = Vec::new();
    loop {
        // A value starts here.
        let mut value = match p.peek() {
            Some(b'[') => {
                p.at += 1;
                if p.peek() == Some(b']') {
                    p.at += 1;
                    Value::Array(Vec::new())
                } else {
                    open.push(Open::Array(Vec::new()));
                    continue;
                }
            }
            Some(b'{') => {
                p.at += 1;
                if p.peek() == Some(b'}') {
                    p.at += 1;
                    Value::Object(Map::new())
                } else {
                    let key = p.key()?;
                    open.push(Open::Object(Map::new(), key));
                    continue;
                }
            }
            Some(_) => p.leaf()?,
            None => return Err(fail("expected a value", p.at)),
        };
        // It ends here: put it in its container, closing containers as they end.
        loop {
            match open.last_mut() {
                None => {
                    return match p.peek() {
                        None => Ok(value),
                        Some(_) => Err(fail("trailing characters", p.at)),
                    }
                }
                Some(Open::Array(items)) => {
                    items.push(value);
                    match p.peek() {
                        Some(b',') => {
                            p.at += 1;
                            break;
                        }
                        Some(b']') => {
                            p.at += 1;
                            let Some(Open::Array(items)) = open.pop() else {
                                return Err(fail("unbalanced array", p.at));
                            };
                            value = Value::Array(items);
                        }
                        _ => return Err(fail("expected ',' or ']'", p.at)),
                    }
                }
                Some(Open::Object(map, key)) => {
                    map.insert(std::mem::take(key), value);
                    match p.peek() {
                        Some(b',') => {
                            p.at += 1;
                            *key = p.key()?;
                            break;
                        }
                        Some(b'}') => {
                            p.at += 1;
                            let Some(Open::Object(map, _)) = open.pop() else {
                                return Err(fail("unbalanced object", p.at));
                            };
                            value = Value::Object(map);
                        }
                        _ => return Err(fail("expected ',' or '}'", p.at)),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use stagecraft_model::Record;

    fn legacy_record(levels: usize) -> Vec<u8> {
        let value = format!("{}0{}", "[".repeat(levels), "]".repeat(levels));
        format!(
            r#"{{"id":"rec_1","kind":"lead","name":"A \"[[[\" name","email":null,"phone":null,"amount":null,"currency":null,"owner":null,"company":null,"contact":null,"pipeline":null,"stage":null,"custom":{{"deep":{value}}},"version":1,"created_at":"2025-01-01T00:00:00Z","updated_at":"2025-01-01T00:00:00Z"}}"#
        )
        .into_bytes()
    }

    #[test]
    fn values_stored_by_older_versions_read_back() {
        let bytes = legacy_record(127);
        let err = serde_json::from_slice::<Record>(&bytes).unwrap_err();
        assert!(too_deep(&err), "{err}");
        assert_eq!(nesting(&bytes), 129);
        let r: Record = decode(&bytes).unwrap().unwrap();
        let deep = serde_json::to_vec(&r.custom["deep"]).unwrap();
        assert_eq!(nesting(&deep), 127);
        assert_eq!(r.name, "A \"[[[\" name");
    }

    #[test]
    fn the_parser_reads_what_serde_json_reads() {
        let docs = [
            r#"{"a": [1, -2.5e3, true, false, null, "x\"y\\", {"b": {}}, []], "c": "\u00e9"}"#,
            "[]",
            " 3 ",
            r#"{"k": [[[]]], "k": 2}"#,
        ];
        for d in docs {
            let ours = parse(d.as_bytes()).unwrap();
            let theirs: Value = serde_json::from_str(d).unwrap();
            assert_eq!(ours, theirs, "{d}");
        }
        for bad in ["[1,]", "{\"a\" 1}", "[1] x", "", "{\"a\":", "\"open"] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn deeper_than_any_version_wrote_is_still_corrupt() {
        assert!(decode::<Record>(&legacy_record(MAX_STORED_DEPTH)).is_none());
        assert!(!too_deep(
            &serde_json::from_slice::<Record>(b"{\"id\":").unwrap_err()
        ));
    }
}

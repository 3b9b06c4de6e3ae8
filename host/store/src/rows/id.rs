//! Ids inside rows: the 16 bytes of their ULID instead of their 30-odd characters.
//!
//! The host mints ids as `{prefix}_{ulid}` (lowercase, see `stagecraft_model::id`) and run
//! ids as `run_{event's ulid}_{10 hex digits}`. An id of one of those shapes, with a prefix
//! in [`PREFIXES`], is stored as its bytes and gives back exactly the same text; any other id
//! (a slug, an id of an older shape, an uppercase ULID) is stored as its text. The check is
//! a round trip, so an id never reads back different from what was written.

use serde::{Deserialize, Serialize};

/// The prefixes stored as a number: their index here. APPEND ONLY (the index is stored).
const PREFIXES: &[&str] = &[
    "evt", "rec", "run", "bnd", "job", "tmr", "tsk", "cmt", "key", "msg", "rpl", "host",
];

/// An id as a row stores it (append only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum IdRow {
    /// Any id that is not one of the shapes below.
    Text(String),
    /// `{PREFIXES[p]}_{ulid}`.
    Ulid(u8, [u8; 16]),
    /// `run_{ulid}_{hex}`: a run's id (its event's ULID and the binding's hash).
    Run([u8; 16], [u8; 5]),
}

fn ulid_of(text: &str) -> Option<[u8; 16]> {
    if text.len() != 26 {
        return None;
    }
    let u = ulid::Ulid::from_string(&text.to_ascii_uppercase()).ok()?;
    (u.to_string().to_ascii_lowercase() == text).then(|| u.to_bytes())
}

fn ulid_text(bytes: &[u8; 16]) -> String {
    ulid::Ulid::from_bytes(*bytes)
        .to_string()
        .to_ascii_lowercase()
}

fn compact(id: &str) -> Option<IdRow> {
    let (prefix, tail) = id.split_once('_')?;
    if prefix == "run" {
        if let Some((u, h)) = tail.split_once('_') {
            let hash = hex::decode(h).ok()?;
            let hash: [u8; 5] = hash.try_into().ok()?;
            return (hex::encode(hash) == h).then_some(IdRow::Run(ulid_of(u)?, hash));
        }
    }
    let p = PREFIXES.iter().position(|p| *p == prefix)?;
    Some(IdRow::Ulid(u8::try_from(p).ok()?, ulid_of(tail)?))
}

impl From<&str> for IdRow {
    fn from(id: &str) -> IdRow {
        compact(id)
            .filter(|row| row.text() == id)
            .unwrap_or_else(|| IdRow::Text(id.to_string()))
    }
}

impl From<&String> for IdRow {
    fn from(id: &String) -> IdRow {
        IdRow::from(id.as_str())
    }
}

impl IdRow {
    /// The id's text, exactly as it was written.
    pub(crate) fn text(&self) -> String {
        match self {
            IdRow::Text(t) => t.clone(),
            IdRow::Ulid(p, u) => {
                let prefix = PREFIXES.get(usize::from(*p)).copied().unwrap_or("id");
                format!("{prefix}_{}", ulid_text(u))
            }
            IdRow::Run(u, h) => format!("run_{}_{}", ulid_text(u), hex::encode(h)),
        }
    }
}

impl From<IdRow> for String {
    fn from(id: IdRow) -> String {
        match id {
            IdRow::Text(t) => t,
            other => other.text(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Every id reads back as written; ULID-shaped ones take 17 or 22 bytes.
    #[test]
    fn ids_round_trip_and_ulids_are_compact() {
        let evt = stagecraft_model::id::new_id("evt");
        let run = format!("run_{}_0123abcdef", &evt[4..]);
        for id in [
            evt.as_str(),
            run.as_str(),
            "rec_01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "rec_01arz3ndektsv4rrffq69g5fa",
            "zzz_01arz3ndektsv4rrffq69g5fav",
            "run_01arz3ndektsv4rrffq69g5fav_0123ABCDEF",
            "run_01arz3ndektsv4rrffq69g5fav",
            "lead-scoring",
            "evt_00ab12cd34ef56ab78cd90ef",
            "",
            "_",
        ] {
            let row = IdRow::from(id);
            let bytes = postcard::to_allocvec(&row).unwrap();
            let back: IdRow = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(String::from(back), id, "{row:?}");
        }
        assert!(matches!(IdRow::from(evt.as_str()), IdRow::Ulid(0, _)));
        assert_eq!(
            postcard::to_allocvec(&IdRow::from(evt.as_str()))
                .unwrap()
                .len(),
            18
        );
        assert_eq!(
            postcard::to_allocvec(&IdRow::from(run.as_str()))
                .unwrap()
                .len(),
            22
        );
        assert!(matches!(
            IdRow::from("rec_01ARZ3NDEKTSV4RRFFQ69G5FAV"),
            IdRow::Text(_)
        ));
    }
}

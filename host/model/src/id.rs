//! Identifiers: sortable, unique, prefixed with what they name (`rec_…`, `evt_…`).
//!
//! ULIDs sort by creation time, so journal order and cursor pagination follow key order, and
//! they stay unique across hosts should several ever share one store.

use std::sync::Mutex;

static GENERATOR: Mutex<Option<ulid::Generator>> = Mutex::new(None);

/// A new identifier `"{prefix}_{ulid}"`, strictly increasing within this process.
pub fn new_id(prefix: &str) -> String {
    let ulid = {
        let mut guard = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
        let generator = guard.get_or_insert_with(ulid::Generator::new);
        // The generator only fails when 80 random bits overflow within one millisecond.
        generator.generate().unwrap_or_else(|_| ulid::Ulid::new())
    };
    format!("{prefix}_{}", ulid.to_string().to_ascii_lowercase())
}

/// The largest id `"{prefix}_{ulid}"` minted at or before `ms` (Unix milliseconds): every id
/// from that millisecond or earlier sorts at or below it.
pub fn last_id_at(prefix: &str, ms: i64) -> String {
    let ulid = ulid::Ulid::from_parts(ms.max(0) as u64, u128::MAX);
    format!("{prefix}_{}", ulid.to_string().to_ascii_lowercase())
}

/// True when `s` can be used as an id or slug inside store keys and URLs.
pub fn is_valid_slug(s: &str) -> bool {
    stagecraft_rules::field::is_slug(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_and_carry_prefix() {
        let a = new_id("rec");
        let b = new_id("rec");
        assert!(a.starts_with("rec_"));
        assert!(b > a);
        assert!(is_valid_slug(&a));
        assert!(!is_valid_slug("a/b"));
        assert!(!is_valid_slug(""));
        for bad in [".", "..", "...", ".env", "-rf", "_x", &"a".repeat(65)] {
            assert!(!is_valid_slug(bad), "{bad:?}");
        }
        for good in ["a", "v2.mover", "0-9_x", &"a".repeat(64)] {
            assert!(is_valid_slug(good), "{good:?}");
        }
    }

    #[test]
    fn last_id_at_bounds_ids_of_that_millisecond() {
        let a = new_id("evt");
        let now = chrono::Utc::now().timestamp_millis();
        assert!(a <= last_id_at("evt", now));
        assert!(a > last_id_at("evt", now - 60_000));
    }
}

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

/// A deterministic id `"{prefix}_{ulid}"` whose time part is `ms` (Unix milliseconds) and
/// whose random part is the low 80 bits of `random`. Runs make their follow-up and message
/// ids this way: the same run reproduces the same ids (replay and dry runs rely on it), and
/// the ids still sort by time like every other id, so journal order stays key order.
pub fn id_at(prefix: &str, ms: i64, random: u128) -> String {
    let ulid = ulid::Ulid::from_parts(ms.max(0) as u64, random & ((1u128 << 80) - 1));
    format!("{prefix}_{}", ulid.to_string().to_ascii_lowercase())
}

/// The Unix milliseconds an id made by [`new_id`] or [`id_at`] carries; None for ids of
/// another shape (such as the hex follow-up ids of older versions).
pub fn time_of(id: &str) -> Option<i64> {
    let (_, tail) = id.split_once('_')?;
    let tail = tail.split('_').next()?;
    if tail.len() != 26 {
        return None;
    }
    let ulid = ulid::Ulid::from_string(&tail.to_ascii_uppercase()).ok()?;
    i64::try_from(ulid.timestamp_ms()).ok()
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
    fn ids_at_a_time_are_deterministic_and_sort_by_it() {
        let a = id_at("evt", 1_700_000_000_000, 42);
        assert_eq!(a, id_at("evt", 1_700_000_000_000, 42));
        assert_ne!(a, id_at("evt", 1_700_000_000_000, 43));
        assert!(a < id_at("evt", 1_700_000_000_001, 0));
        assert!(a > last_id_at("evt", 1_699_999_999_999));
        assert!(a <= last_id_at("evt", 1_700_000_000_000));
        assert_eq!(time_of(&a), Some(1_700_000_000_000));
        assert_eq!(
            time_of(&format!("run_{}_abc", &a[4..])),
            Some(1_700_000_000_000)
        );
        assert_eq!(time_of("evt_00ab12cd34ef56ab78cd90ef"), None);
        let now = chrono::Utc::now().timestamp_millis();
        assert!((time_of(&new_id("rec")).unwrap_or(0) - now).abs() < 60_000);
    }

    #[test]
    fn last_id_at_bounds_ids_of_that_millisecond() {
        let a = new_id("evt");
        let now = chrono::Utc::now().timestamp_millis();
        assert!(a <= last_id_at("evt", now));
        assert!(a > last_id_at("evt", now - 60_000));
    }
}

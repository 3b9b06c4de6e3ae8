//! Filling a page from posting lists ([`super::postings`]): the one page loop every paged
//! list shares. A page ends at its item limit or its byte budget ([`ListLimits`]: at least
//! one item, and an item past the budget waits for the next page), and then `next` is its
//! last id when anything follows. Every list reads an index, so nothing is scanned past
//! non-matches — except a text search's name match (no index can answer "contains"), whose
//! rows a page looks at [`TEXT_LOOKS`] at most before it returns its cursor.

use sled::IVec;

use super::index::esc;
use super::postings::{Dir, Judge, Step};
use super::SledBackend;
use crate::query::{ListLimits, Page};
use crate::{Result, StoreError};

/// Most rows one page of a text search looks at (a name containing the text has no index).
pub const TEXT_LOOKS: usize = 10_000;

/// What a list makes of the row an index entry points at.
pub enum Fetched<T> {
    /// On the page: the row, with its stored size.
    Item(usize, T),
    /// Not a match on a filter no index answers (a text search): left out.
    Skip,
    /// Not what its index entries say (gone, or not matching them), as read (`bytes`) under
    /// `key`: a commit moved it after the entries were read, or an entry is stale. Left
    /// out either way; see [`stale`].
    Mismatch { key: String, bytes: Option<IVec> },
}

/// A page of the ids every list in `prefixes` holds, past `after` in `dir`'s order: each id
/// is turned into its row by `fetch`. With `looks`, at most that many rows are fetched (a
/// filter checked on the rows themselves) and the page then ends with a cursor past them.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fill<T>(
    b: &SledBackend,
    prefixes: &[String],
    after: Option<&str>,
    dir: Dir,
    limit: usize,
    limits: &ListLimits,
    looks: Option<usize>,
    fetch: impl FnMut(&str) -> Result<Fetched<T>>,
) -> Result<Page<T>> {
    fill_judged(b, prefixes, after, dir, limit, limits, looks, None, fetch)
}

/// [`fill`], with the rows judging which lists hold a candidate (see [`Judge`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn fill_judged<T>(
    b: &SledBackend,
    prefixes: &[String],
    after: Option<&str>,
    dir: Dir,
    limit: usize,
    limits: &ListLimits,
    looks: Option<usize>,
    judge: Option<Judge<'_>>,
    mut fetch: impl FnMut(&str) -> Result<Fetched<T>>,
) -> Result<Page<T>> {
    let limit = limit.max(1);
    let mut items = Vec::new();
    let mut bytes = 0usize;
    let mut last: Option<String> = None;
    let mut looked = 0usize;
    let mut full = false;
    let mut next: Option<String> = None;
    b.walk_ids(prefixes, after, dir, judge, |step| {
        let id = match step {
            Step::Stop(decided) => {
                next = decided.or_else(|| last.clone());
                return Ok(false);
            }
            Step::Hit(id) => id,
        };
        if full || looks.is_some_and(|n| looked >= n) {
            next = last.clone();
            return Ok(false);
        }
        looked += 1;
        match fetch(&id)? {
            Fetched::Mismatch { key, bytes } => {
                stale(b, prefixes, &id, &key, bytes.as_ref())?;
                if looks.is_some() {
                    last = Some(id);
                }
            }
            Fetched::Skip => {
                if looks.is_some() {
                    last = Some(id);
                }
            }
            Fetched::Item(len, item) => {
                if !items.is_empty() && bytes + len > limits.page_bytes {
                    next = last.clone();
                    return Ok(false);
                }
                items.push(item);
                bytes += len;
                last = Some(id);
                full = items.len() >= limit || bytes >= limits.page_bytes;
            }
        }
        Ok(true)
    })?;
    Ok(Page { items, next })
}

/// A row that does not match the entries that led to it. If every entry is still there and
/// the row still reads the same, no commit explains it: an entry is stale (an index write
/// was missed). That is a bug: debug builds (and so the contract suite) fail the list with
/// [`StoreError::Corrupt`] naming the entry; release builds log it and leave the row out.
fn stale(
    b: &SledBackend,
    prefixes: &[String],
    id: &str,
    key: &str,
    bytes: Option<&IVec>,
) -> Result<()> {
    for p in prefixes {
        let entry = format!("{p}{}", esc(id));
        if b.data.get(&entry)?.is_none() {
            return Ok(()); // moved by a commit since
        }
    }
    if b.data.get(key)?.as_ref() != bytes {
        return Ok(());
    }
    let entry = format!("{}{}", prefixes.first().map_or("", String::as_str), esc(id));
    if cfg!(debug_assertions) {
        return Err(StoreError::Corrupt {
            key: entry,
            reason: format!("a stale index entry: {key} does not match it"),
        });
    }
    tracing::warn!(%entry, row = %key, "a stale index entry; the row is left out");
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::contract::{record, tenant};
    use crate::sled::database::{GETS, SCANS};
    use crate::sled::SledBackend;
    use crate::{Backend, Changeset, ListLimits, RecordFilter, RecordWrite};
    use stagecraft_model::RecordKind;

    /// A record filter of several lists (kind, pipeline, owner) reads each row it returns
    /// once and judges the candidates on those rows: no lookups in the other lists, so
    /// `records.find` costs one point read per record it returns.
    #[test]
    fn a_combined_record_filter_reads_each_row_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let b = SledBackend::open(dir.path()).expect("opens");
        tenant(&b, "t");
        let mut cs = Changeset::new("t");
        let mut want = Vec::new();
        for n in 0..3000 {
            let mut r = record(&format!("rec_{n:05}"), Some("new"));
            r.owner = Some(if n % 30 == 7 { "ann" } else { "bob" }.into());
            if r.owner.as_deref() == Some("ann") {
                want.push(r.id.clone());
            }
            cs.records.push(RecordWrite::Put {
                record: Box::new(r),
                expected: None,
            });
        }
        b.commit(&[&cs]).pop().expect("one").expect("committed");
        let filter = RecordFilter {
            kind: Some(RecordKind::Lead),
            pipeline: Some("sales".into()),
            owner: Some("ann".into()),
            ..Default::default()
        };
        let (gets, scans) = (GETS.with(|n| n.get()), SCANS.with(|n| n.get()));
        let page = b
            .search_records("t", &filter, None, None, 100, &ListLimits::default())
            .expect("a page");
        let gets = GETS.with(|n| n.get()) - gets;
        let scans = SCANS.with(|n| n.get()) - scans;
        let got: Vec<String> = page.items.into_iter().map(|r| r.id).collect();
        assert_eq!(got, want);
        assert!(gets <= 102, "{gets} point reads for 100 records");
        assert!(scans <= 3, "{scans} scans");
    }
}

//! Reading posting lists: the ids under one or more key prefixes, in list order (ascending,
//! or descending for the run history), starting past a cursor. One prefix is one range
//! scan. Several (filters combined) are intersected by seeking: each list is asked for its
//! first id at or past the current candidate, and a candidate that every list holds is a
//! match — so a combination never reads a row that does not match, and it reads an index
//! key only where the lists disagree. The seeks of one page are bounded ([`SEEKS`]); a
//! page that runs out of them ends with a cursor past what it decided.

use super::index::unesc;
use super::SledBackend;
use crate::Result;

/// Most seeks one page of an intersection makes before it returns its cursor. Every seek
/// moves the candidate past at least one index entry of some list, so a page costs at most
/// this many tree descents (about 2 µs each) whatever the lists hold.
pub const SEEKS: usize = 20_000;

/// Which way a list runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Oldest first; the cursor is the last id returned (the list goes on after it).
    Up,
    /// Newest first; the cursor is the id to go on before.
    Down,
}

/// What one step of a walk yields.
pub enum Step {
    /// An id in every list.
    Hit(String),
    /// The seek budget ran out: every id up to this one (in list order) is decided.
    Stop(Option<String>),
}

fn id_in(prefix: &str, key: &[u8]) -> String {
    unesc(&String::from_utf8_lossy(&key[prefix.len()..])).into_owned()
}

/// The escaped id appended to a prefix, as a key.
fn key(prefix: &str, id: &str) -> Vec<u8> {
    let mut k = prefix.as_bytes().to_vec();
    k.extend_from_slice(super::index::esc(id).as_bytes());
    k
}

impl SledBackend {
    /// The first id of `prefix`'s list at or past `from` (strictly past when `strict`), in
    /// `dir`'s order; from the list's start when `from` is None.
    fn seek(
        &self,
        prefix: &str,
        from: Option<&str>,
        strict: bool,
        dir: Dir,
    ) -> Result<Option<String>> {
        let lo = prefix.as_bytes().to_vec();
        let mut hi = lo.clone();
        hi.push(0xff);
        let found = match (dir, from) {
            (Dir::Up, None) => self.data.range(lo..hi).next(),
            (Dir::Up, Some(f)) => {
                let mut start = key(prefix, f);
                if strict {
                    start.push(0);
                }
                self.data.range(start..hi).next()
            }
            (Dir::Down, None) => self.data.range(lo..hi).next_back(),
            (Dir::Down, Some(f)) => {
                let end = key(prefix, f);
                if strict {
                    self.data.range(lo..end).next_back()
                } else {
                    self.data.range(lo..=end).next_back()
                }
            }
        };
        match found {
            Some(item) => Ok(Some(id_in(prefix, &item?.0))),
            None => Ok(None),
        }
    }

    /// Walks the ids every list in `prefixes` holds, past `after` in `dir`'s order, calling
    /// `visit` with each step until it returns false or the lists end. With one list it is
    /// a plain range scan; with more, an intersection within [`SEEKS`] per call.
    pub(super) fn walk_ids(
        &self,
        prefixes: &[String],
        after: Option<&str>,
        dir: Dir,
        visit: impl FnMut(Step) -> Result<bool>,
    ) -> Result<()> {
        self.walk_ids_within(prefixes, after, dir, SEEKS, visit)
    }

    /// [`SledBackend::walk_ids`] with at most `budget` seeks for an intersection.
    fn walk_ids_within(
        &self,
        prefixes: &[String],
        after: Option<&str>,
        dir: Dir,
        budget: usize,
        mut visit: impl FnMut(Step) -> Result<bool>,
    ) -> Result<()> {
        let Some((first, rest)) = prefixes.split_first() else {
            return Ok(());
        };
        if rest.is_empty() {
            return self.walk_one(first, after, dir, |id| visit(Step::Hit(id)));
        }
        let mut seeks = 0;
        let mut decided: Option<String> = after.map(str::to_string);
        let mut cand = match self.seek(first, after, true, dir)? {
            Some(c) => c,
            None => return Ok(()),
        };
        let mut agree = 1;
        let mut i = 1;
        loop {
            if seeks >= budget {
                visit(Step::Stop(decided))?;
                return Ok(());
            }
            seeks += 1;
            let Some(found) = self.seek(&prefixes[i], Some(&cand), false, dir)? else {
                return Ok(());
            };
            if found == cand {
                agree += 1;
                if agree == prefixes.len() {
                    if !visit(Step::Hit(cand.clone()))? {
                        return Ok(());
                    }
                    decided = Some(cand.clone());
                    match self.seek(first, Some(&cand), true, dir)? {
                        Some(c) => cand = c,
                        None => return Ok(()),
                    }
                    agree = 1;
                    i = 1;
                    continue;
                }
            } else {
                // Everything before `found` is decided: some list holds none of it.
                decided = Some(cand);
                cand = found;
                agree = 1;
            }
            i = (i + 1) % prefixes.len();
        }
    }

    /// The ids of one list past `after`, in `dir`'s order, until `visit` returns false.
    fn walk_one(
        &self,
        prefix: &str,
        after: Option<&str>,
        dir: Dir,
        mut visit: impl FnMut(String) -> Result<bool>,
    ) -> Result<()> {
        let lo = prefix.as_bytes().to_vec();
        let mut hi = lo.clone();
        hi.push(0xff);
        let iter: Box<dyn Iterator<Item = Result<(sled::IVec, sled::IVec)>> + '_> =
            match (dir, after) {
                (Dir::Up, None) => Box::new(self.data.range(lo..hi)),
                (Dir::Up, Some(a)) => {
                    let mut start = key(prefix, a);
                    start.push(0);
                    Box::new(self.data.range(start..hi))
                }
                (Dir::Down, None) => Box::new(self.data.range(lo..hi).rev()),
                (Dir::Down, Some(a)) => Box::new(self.data.range(lo..key(prefix, a)).rev()),
            };
        for item in iter {
            let (k, _) = item?;
            if !visit(id_in(prefix, &k))? {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sled::codec::Marker;
    use crate::sled::page::{fill, Fetched};
    use crate::ListLimits;

    fn id(n: usize) -> String {
        format!("id_{n:04}")
    }

    /// A backend in a temp dir whose lists `a/` and `b/` hold the ids given.
    fn lists(dir: &std::path::Path, a: &[usize], b: &[usize]) -> SledBackend {
        let backend = SledBackend::open(dir).expect("opens");
        backend
            .transact(|tx| {
                for n in a {
                    tx.put(&format!("a/{}", id(*n)), &Marker)?;
                }
                for n in b {
                    tx.put(&format!("b/{}", id(*n)), &Marker)?;
                }
                Ok(())
            })
            .expect("written");
        backend
    }

    /// An intersection that finds little stops after its seeks with a cursor past what it
    /// decided; going on from each cursor finds exactly the common ids, in order, both ways.
    #[test]
    fn an_intersection_stops_within_its_seeks_and_resumes_exactly() {
        let dir = tempfile::tempdir().expect("temp dir");
        let evens: Vec<usize> = (0..400).step_by(2).collect();
        let odds: Vec<usize> = (1..400).step_by(2).chain([150, 390]).collect();
        let b = lists(dir.path(), &evens, &odds);
        let prefixes = ["a/".to_string(), "b/".to_string()];
        for dir in [Dir::Up, Dir::Down] {
            let (mut hits, mut stops) = (Vec::new(), 0);
            let mut after: Option<String> = None;
            loop {
                let mut stopped = None;
                b.walk_ids_within(&prefixes, after.as_deref(), dir, 10, |step| {
                    match step {
                        Step::Hit(id) => hits.push(id),
                        Step::Stop(at) => stopped = Some(at.expect("a cursor")),
                    }
                    Ok(true)
                })
                .expect("walks");
                let Some(at) = stopped else { break };
                assert!(after.as_ref().is_none_or(|a| match dir {
                    Dir::Up => at > *a,
                    Dir::Down => at < *a,
                }));
                after = Some(at);
                stops += 1;
                assert!(stops < 1000, "never ends");
            }
            let mut want = vec![id(150), id(390)];
            if dir == Dir::Down {
                want.reverse();
            }
            assert_eq!(hits, want, "{dir:?}");
            assert!(stops >= 20, "400 entries need many 10-seek calls: {stops}");
        }
    }

    /// A page that checks a filter on the rows looks at `looks` rows at most, then ends
    /// with a cursor even when it found nothing; walking the cursors finds every match once.
    #[test]
    fn a_page_checking_rows_looks_at_a_bounded_number() {
        let dir = tempfile::tempdir().expect("temp dir");
        let all: Vec<usize> = (0..50).collect();
        let b = lists(dir.path(), &all, &[]);
        let prefixes = ["a/".to_string()];
        let (mut found, mut pages) = (Vec::new(), 0);
        let mut after: Option<String> = None;
        loop {
            let mut looked = 0;
            let page = fill(
                &b,
                &prefixes,
                after.as_deref(),
                Dir::Up,
                100,
                &ListLimits::default(),
                Some(4),
                |id| {
                    looked += 1;
                    Ok(if id.ends_with('7') {
                        Fetched::Item(1, id.to_string())
                    } else {
                        Fetched::Skip
                    })
                },
            )
            .expect("a page");
            assert!(looked <= 4, "{looked}");
            found.extend(page.items);
            pages += 1;
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(found, [id(7), id(17), id(27), id(37), id(47)]);
        assert!(pages >= 12, "{pages}");
    }
}

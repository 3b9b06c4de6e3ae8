//! Reading posting lists: the ids under one or more key prefixes, in list order (ascending,
//! or descending for the run history), starting past a cursor. One prefix is one range
//! scan. Several (filters combined) are intersected: one list drives, read in order, and
//! each id it yields is looked up in the others; the first list that lacks it drives from
//! there (see [`SledBackend::walk_ids`]). A candidate that every list holds is a match — so a
//! combination never reads a row that does not match. The seeks of one page are bounded
//! ([`SEEKS`]); a page that runs out of them ends with a cursor past what it decided.

use super::index::unesc;
use super::SledBackend;
use crate::Result;

/// Most seeks (steps, lookups and opens of a list) one page of an intersection makes before
/// it returns its cursor. Every step moves the candidate past at least one index entry, so
/// a page costs at most this many tree descents (about 2 µs each) whatever the lists hold.
pub const SEEKS: usize = 20_000;

/// Which way a list runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Oldest first; the cursor is the last id returned (the list goes on after it).
    Up,
    /// Newest first; the cursor is the id to go on before.
    Down,
}

/// Answers, from a candidate's row, the first list (by its place in the prefixes) that
/// does not hold it, or None when the row is for the visitor to judge (it matches every
/// list, or it is gone). A list that reads each row anyway answers this instead of the
/// lookups an intersection otherwise makes in every other list: rows and their entries
/// are written in one transaction, so a row's fields say which lists hold it.
pub type Judge<'a> = &'a mut dyn FnMut(&str) -> Result<Option<usize>>;

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
    /// Walks the ids every list in `prefixes` holds, past `after` in `dir`'s order, calling
    /// `visit` with each step until it returns false or the lists end. With one list it is
    /// a plain range scan; with more, an intersection within [`SEEKS`] per call.
    pub(super) fn walk_ids(
        &self,
        prefixes: &[String],
        after: Option<&str>,
        dir: Dir,
        judge: Option<Judge<'_>>,
        visit: impl FnMut(Step) -> Result<bool>,
    ) -> Result<()> {
        self.walk_ids_within(prefixes, after, dir, SEEKS, judge, visit)
    }

    /// [`SledBackend::walk_ids`] with at most `budget` seeks for an intersection.
    ///
    /// An intersection is driven by one list, read with one open iterator (a step inside
    /// the node it holds costs no descent); every candidate it yields is looked up in the
    /// other lists with a point read of its entry, which costs a descent but, unlike
    /// opening an iterator, copies no node. The first list that lacks a candidate drives
    /// from there, opened just past it: so the list that rejects most ends up driving, and
    /// a filter whose lists nest (a team member's leads among all leads) reads its
    /// smallest list in order and probes the others once per id it returns. With `judge`,
    /// the candidate's row answers instead of the lookups. Each step, lookup, judgement and
    /// open counts against `budget`.
    fn walk_ids_within(
        &self,
        prefixes: &[String],
        after: Option<&str>,
        dir: Dir,
        budget: usize,
        mut judge: Option<Judge<'_>>,
        mut visit: impl FnMut(Step) -> Result<bool>,
    ) -> Result<()> {
        let Some((first, rest)) = prefixes.split_first() else {
            return Ok(());
        };
        if rest.is_empty() {
            return self.walk_one(first, after, dir, |id| visit(Step::Hit(id)));
        }
        let mut seeks = 1;
        let mut decided: Option<String> = after.map(str::to_string);
        let mut driver = 0;
        let mut iter = self.list_iter(first, after, dir);
        let mut probe = String::new();
        let mut progressed = false;
        loop {
            // Each pass decides one candidate, so a call that stops has moved on.
            if seeks >= budget && progressed {
                visit(Step::Stop(decided))?;
                return Ok(());
            }
            seeks += 1;
            let Some(item) = iter.next() else {
                return Ok(());
            };
            let cand = id_in(&prefixes[driver], &item?.0);
            let mut missing = None;
            if let Some(judge) = judge.as_mut() {
                seeks += 1;
                // The driver's own entry disagreeing with the row is for the visitor.
                missing = judge(&cand)?.filter(|j| *j != driver && *j < prefixes.len());
            } else {
                for (j, p) in prefixes.iter().enumerate() {
                    if j == driver {
                        continue;
                    }
                    seeks += 1;
                    probe.clear();
                    probe.push_str(p);
                    probe.push_str(&super::index::esc(&cand));
                    if self.data.get(&probe)?.is_none() {
                        missing = Some(j);
                        break;
                    }
                }
            }
            match missing {
                None => {
                    if !visit(Step::Hit(cand.clone()))? {
                        return Ok(());
                    }
                }
                Some(j) => {
                    // `j` holds nothing between the last decided id and `cand`.
                    seeks += 1;
                    iter = self.list_iter(&prefixes[j], Some(&cand), dir);
                    driver = j;
                }
            }
            decided = Some(cand);
            progressed = true;
        }
    }

    /// An iterator over `prefix`'s list strictly past `after`, in `dir`'s order.
    fn list_iter<'a>(
        &'a self,
        prefix: &str,
        after: Option<&str>,
        dir: Dir,
    ) -> Box<dyn Iterator<Item = Result<(sled::IVec, sled::IVec)>> + 'a> {
        let lo = prefix.as_bytes().to_vec();
        let mut hi = lo.clone();
        hi.push(0xff);
        match (dir, after) {
            (Dir::Up, None) => Box::new(self.data.range(lo..hi)),
            (Dir::Up, Some(a)) => {
                let mut start = key(prefix, a);
                start.push(0);
                Box::new(self.data.range(start..hi))
            }
            (Dir::Down, None) => Box::new(self.data.range(lo..hi).rev()),
            (Dir::Down, Some(a)) => Box::new(self.data.range(lo..key(prefix, a)).rev()),
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
        for item in self.list_iter(prefix, after, dir) {
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
                b.walk_ids_within(&prefixes, after.as_deref(), dir, 10, None, |step| {
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
    fn scans() -> u64 {
        crate::sled::database::SCANS.with(|n| n.get())
    }

    /// Every id of a walk over `prefixes` in `dir`'s order, resumed from its cursor after
    /// each stop (at most `budget` seeks a call).
    fn walk_all(b: &SledBackend, prefixes: &[String], dir: Dir, budget: usize) -> Vec<String> {
        let (mut hits, mut after) = (Vec::new(), None::<String>);
        for _ in 0..100_000 {
            let mut stopped = None;
            b.walk_ids_within(prefixes, after.as_deref(), dir, budget, None, |step| {
                match step {
                    Step::Hit(id) => hits.push(id),
                    Step::Stop(at) => stopped = at,
                }
                Ok(true)
            })
            .expect("walks");
            match stopped {
                Some(at) => after = Some(at),
                None => return hits,
            }
        }
        panic!("never ends");
    }

    /// A filter whose lists nest (a team member's 100 leads among all leads) reads the
    /// small list in order and looks each of its ids up in the big one: the walk opens a
    /// couple of iterators, not one or more per match (an open copies a node).
    #[test]
    fn nested_lists_are_walked_by_the_smaller_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let dense: Vec<usize> = (0..3000).collect();
        let sparse: Vec<usize> = (0..3000).step_by(30).collect();
        let b = lists(dir.path(), &dense, &sparse);
        let prefixes = ["a/".to_string(), "b/".to_string()];
        for dir in [Dir::Up, Dir::Down] {
            let before = scans();
            let hits = walk_all(&b, &prefixes, dir, SEEKS);
            let opened = scans() - before;
            let mut want: Vec<String> = sparse.iter().map(|n| id(*n)).collect();
            if dir == Dir::Down {
                want.reverse();
            }
            assert_eq!(hits, want, "{dir:?}");
            assert!(opened <= 3, "{dir:?}: {opened} scans for 100 matches");
        }
    }

    /// Three lists of every density mix, walked both ways with small and large seek
    /// budgets, answer exactly the ids all three hold.
    #[test]
    fn intersections_answer_exactly_what_every_list_holds() {
        let mut seed: u64 = 0x5eed;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for round in 0..12 {
            let dir = tempfile::tempdir().expect("temp dir");
            let b = SledBackend::open(dir.path()).expect("opens");
            // Each list keeps an id with its own odds: from nearly all to nearly none.
            let odds = [1 + round % 3, 1 + next() % 20, 1 + next() % 200];
            let mut held: Vec<Vec<usize>> = vec![Vec::new(); 3];
            for n in 0..600 {
                for (l, o) in odds.iter().enumerate() {
                    if next() % o == 0 {
                        held[l].push(n);
                    }
                }
            }
            b.transact(|tx| {
                for (l, ids) in held.iter().enumerate() {
                    for n in ids {
                        tx.put(&format!("l{l}/{}", id(*n)), &Marker)?;
                    }
                }
                Ok(())
            })
            .expect("written");
            let prefixes: Vec<String> = (0..3).map(|l| format!("l{l}/")).collect();
            let all: Vec<String> = held[0]
                .iter()
                .filter(|n| held[1].contains(n) && held[2].contains(n))
                .map(|n| id(*n))
                .collect();
            for budget in [3, 7, SEEKS] {
                for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
                    let p: Vec<String> = order.iter().map(|i| prefixes[*i].clone()).collect();
                    assert_eq!(walk_all(&b, &p, Dir::Up, budget), all, "{odds:?} {budget}");
                    let mut down = all.clone();
                    down.reverse();
                    assert_eq!(
                        walk_all(&b, &p, Dir::Down, budget),
                        down,
                        "{odds:?} {budget}"
                    );
                }
            }
        }
    }
}

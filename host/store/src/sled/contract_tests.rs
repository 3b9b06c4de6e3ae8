//! The backend contract suite ([`crate::contract`]) against the sled backend: each
//! property on a real sled database in a temp dir of its own, opened as the host opens it.
//! A new backend's tests do the same with their own harness.

use std::path::Path;
use std::sync::Arc;

use super::SledBackend;
use crate::contract::Open;
use crate::Backend;

/// Runs `property` on a fresh data dir; every `open` opens that same dir again.
fn on_sled(property: fn(Open<'_>)) {
    let dir = tempfile::Builder::new()
        .prefix("stagecraft-contract-")
        .tempdir()
        .expect("temp dir");
    let path: &Path = dir.path();
    let open = || -> Arc<dyn Backend> { Arc::new(SledBackend::open(path).expect("sled opens")) };
    property(&open);
}

// Every property of the contract, one test each (`commit::runs_commit_exactly_once`, …).
crate::backend_contract!(on_sled);

/// `run_all` (the entry point for a harness without one test per property) hands over
/// every property, once each, in the order of `PROPERTIES`.
#[test]
fn run_all_hands_every_property_to_the_harness() {
    let seen = std::cell::RefCell::new(Vec::new());
    crate::contract::run_all(|p| seen.borrow_mut().push(p as usize));
    let listed: Vec<usize> = crate::contract::PROPERTIES
        .iter()
        .map(|(_, p)| *p as usize)
        .collect();
    assert_eq!(*seen.borrow(), listed);
    assert_eq!(listed.len(), 23, "every property of the contract");
}

//! `scorer` with a stricter threshold (70): version 2 of the scoring module in the replay
//! tests, so replay shows exactly the leads scoring 50-69 behaving differently.

const THRESHOLD: i64 = 70;

include!("../../scorer/src/rule.rs");

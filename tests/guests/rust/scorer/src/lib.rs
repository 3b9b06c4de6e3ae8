//! Scores a lead from its `size` custom field (`size / 10`) into `score`; at or above the
//! threshold (50) moves it to `qualified` and notifies `sales`. A lead without a size is an
//! error. Version 1 of the scoring module in the replay tests.

const THRESHOLD: i64 = 50;

include!("rule.rs");

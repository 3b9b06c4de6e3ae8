//! The host API's rules, in one copy: which field values a write may carry, how deep and large
//! a stored JSON value may be, which stage moves a rule may make, what a task or comment may
//! hold, which grants each create/complete/comment call needs, and which inbound event names
//! are the host's own. The host applies them to every write (API and modules alike), and the
//! SDK's `MockHost` applies the very same functions, so a rule that passes its native tests
//! is not refused in production for a reason the tests could not see.
//!
//! Plain functions over plain inputs: no I/O, no record type of either side (each side maps
//! a [`field::FieldWrite`] onto its own record), and it builds for `wasm32-wasip2`.

pub mod event;
pub mod field;
pub mod grant;
pub mod stage;
pub mod task;
pub mod value;

pub use field::{FieldWrite, Kind};
pub use grant::Action;
pub use stage::{check_move, MoveCheck};
pub use value::ValueError;

/// `null`, `a boolean`, `a number`, … for error messages.
pub fn type_name(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

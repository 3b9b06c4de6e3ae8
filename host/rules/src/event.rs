//! Which inbound event names belong to the host. Task events reach modules as inbound events
//! named `task_created`, `task_completed` and `task_overdue` (so 0.1 modules get them
//! unchanged); the host refuses every `task_` name from integrations and inbound triggers,
//! and the SDK's `MockHost` refuses the same names unless the event is a real task event, so
//! a module can trust an inbound `task_*` event in tests as in production.

/// The prefix of the reserved names (`task_created`, `task_completed`, `task_overdue`, and
/// any other `task_` name a later version may add).
pub const RESERVED_PREFIX: &str = "task_";

/// Whether `name` is reserved for task events: an integration cannot post it.
pub fn reserved_inbound(name: &str) -> bool {
    name.starts_with(RESERVED_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_are_reserved_and_others_are_not() {
        for name in ["task_created", "task_completed", "task_overdue", "task_x"] {
            assert!(reserved_inbound(name), "{name}");
        }
        for name in [
            "task",
            "tasks_done",
            "webhook",
            "Task_completed",
            "my_task_done",
        ] {
            assert!(!reserved_inbound(name), "{name}");
        }
    }
}

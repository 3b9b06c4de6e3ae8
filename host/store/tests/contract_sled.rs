//! The backend contract suite (`stagecraft_store::contract`) against the sled backend: each
//! property on a real sled database in a temp dir of its own, opened as the host opens it.

use std::path::Path;
use std::sync::Arc;

use stagecraft_store::contract::Open;
use stagecraft_store::sled::SledBackend;
use stagecraft_store::Backend;

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

macro_rules! properties {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            on_sled(contract::$name);
        }
    )*};
}

mod commit {
    use super::*;
    use stagecraft_store::contract::commit as contract;
    properties!(
        commits_are_all_or_nothing,
        version_conflicts_reject_the_changeset,
        stage_occupancy_guards_pipelines,
        runs_commit_exactly_once,
        idempotency_keys_drop_repeats,
        timers_follow_their_stage,
        ops_keep_their_rules,
        acknowledged_commits_survive_a_reopen,
    );
}

mod lists {
    use super::*;
    use stagecraft_store::contract::lists as contract;
    properties!(every_list_pages_in_order, pages_keep_their_budgets);
}

mod lease {
    use super::*;
    use stagecraft_store::contract::lease as contract;
    properties!(
        two_holders_never_hold_the_same_job,
        two_holders_never_hold_the_same_timer,
        a_message_is_claimed_once,
        what_a_dead_holder_held_is_taken_again,
    );
}

mod retention {
    use super::*;
    use stagecraft_store::contract::retention as contract;
    properties!(retention_removes_only_what_is_old);
}

mod reads {
    use super::*;
    use stagecraft_store::contract::reads as contract;
    properties!(readers_never_see_part_of_a_commit);
}

mod modules {
    use super::*;
    use stagecraft_store::contract::modules as contract;
    properties!(module_quotas_hold, module_quotas_hold_under_concurrency);
}

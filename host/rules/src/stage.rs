//! Stage moves made by rules: the target must be a stage of the record's pipeline, and a move
//! backwards needs the binding's `backward` grant. Every refusal is a denial, which ends the
//! run `denied` (nothing the run did applies).

/// What a move asked for turns out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveCheck {
    /// The record moves to another stage.
    Move,
    /// The record is in that stage already: nothing to do.
    Unchanged,
}

/// Checks a rule's move of the record `id` from `current` (None: it has no stage, being a
/// contact or company of `kind`) to `target`, given the pipeline's stages in order.
/// `Err` carries the denial's message.
pub fn check_move(
    id: &str,
    kind: &str,
    pipeline: &str,
    stages: &[&str],
    current: Option<&str>,
    target: &str,
    backward_granted: bool,
) -> Result<MoveCheck, String> {
    let Some(current) = current else {
        return Err(format!("record {id:?} is a {kind} and has no stages"));
    };
    let Some(to) = stages.iter().position(|s| *s == target) else {
        return Err(format!("stage {target:?} is not in pipeline {pipeline:?}"));
    };
    if current == target {
        return Ok(MoveCheck::Unchanged);
    }
    let from = stages.iter().position(|s| *s == current).unwrap_or(0);
    if to < from && !backward_granted {
        return Err(format!(
            "moving {id:?} back from {current:?} to {target:?} needs the backward grant"
        ));
    }
    Ok(MoveCheck::Move)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAGES: &[&str] = &["new", "contacted", "qualified"];

    fn check(current: Option<&str>, target: &str, backward: bool) -> Result<MoveCheck, String> {
        check_move("l1", "lead", "leads", STAGES, current, target, backward)
    }

    #[test]
    fn moves_forward_and_refuses_the_rest_by_name() {
        assert_eq!(check(Some("new"), "qualified", false), Ok(MoveCheck::Move));
        assert_eq!(check(Some("new"), "new", false), Ok(MoveCheck::Unchanged));
        assert!(check(Some("qualified"), "new", false)
            .unwrap_err()
            .contains("backward grant"));
        assert_eq!(check(Some("qualified"), "new", true), Ok(MoveCheck::Move));
        assert!(check(Some("new"), "won", false)
            .unwrap_err()
            .contains("not in pipeline"));
        assert!(check(None, "new", false).unwrap_err().contains("no stages"));
    }
}

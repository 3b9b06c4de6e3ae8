//! What a binding may let its module create, complete or comment, beyond field writes and
//! channels: each action is granted by name (`create:deal`, `create:task`, `comment`, …), and
//! a call without its grant is denied naming the grant it needs. One copy, so the host and
//! the SDK's `MockHost` refuse the same calls with the same words.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::field::Kind;

/// An action a binding can grant. Serialized as its name (`"create:lead"`, `"comment"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// `records.create` of a record of this kind.
    Create(Kind),
    /// `tasks.create`.
    CreateTask,
    /// `tasks.complete`.
    CompleteTask,
    /// `timeline.comment`.
    Comment,
}

impl Action {
    /// Every action, in the order the documentation lists them.
    pub const ALL: [Action; 7] = [
        Action::Create(Kind::Lead),
        Action::Create(Kind::Contact),
        Action::Create(Kind::Company),
        Action::Create(Kind::Deal),
        Action::CreateTask,
        Action::CompleteTask,
        Action::Comment,
    ];

    /// The grant's name, as bindings spell it.
    pub fn name(self) -> &'static str {
        match self {
            Action::Create(Kind::Lead) => "create:lead",
            Action::Create(Kind::Contact) => "create:contact",
            Action::Create(Kind::Company) => "create:company",
            Action::Create(Kind::Deal) => "create:deal",
            Action::CreateTask => "create:task",
            Action::CompleteTask => "complete:task",
            Action::Comment => "comment",
        }
    }

    /// The action named `name`, if there is one.
    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }

    /// What a call without this grant is told (the run then ends `denied`).
    pub fn denial(self) -> String {
        format!(
            "{} needs the {:?} grant, which this binding does not have",
            match self {
                Action::Create(k) => format!("creating a {}", k.as_str()),
                Action::CreateTask => "creating a task".into(),
                Action::CompleteTask => "completing a task".into(),
                Action::Comment => "commenting".into(),
            },
            self.name()
        )
    }
}

/// Checks `action` against the granted list: `Err` carries the denial.
pub fn check(granted: &[Action], action: Action) -> Result<(), String> {
    if granted.contains(&action) {
        Ok(())
    } else {
        Err(action.denial())
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Action, D::Error> {
        let name = String::deserialize(d)?;
        Action::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown grant {name:?}; grants are {}",
                Action::ALL.map(Action::name).join(", ")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_by_name_and_deny_by_name() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.name()), Some(a));
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(serde_json::from_str::<Action>(&json).unwrap(), a);
        }
        let e = serde_json::from_str::<Action>("\"create:ticket\"").unwrap_err();
        assert!(e.to_string().contains("create:deal"), "{e}");
        let denial = check(&[Action::CreateTask], Action::Create(Kind::Deal)).unwrap_err();
        assert!(denial.contains("\"create:deal\" grant"), "{denial}");
        assert!(check(&[Action::Comment], Action::Comment).is_ok());
    }
}

//! What a task and a comment may hold: how long a title, a description and a comment's body
//! may be, how far ahead a task may fall due, and which priorities exist. One copy, checked
//! by the host (API and modules alike) and by the SDK's `MockHost`.

use serde::{Deserialize, Serialize};

/// Bytes of a task's title (HubSpot and Bitrix24 keep 255 characters).
pub const MAX_TITLE_BYTES: usize = 255;

/// Bytes of a task's description.
pub const MAX_DESCRIPTION_BYTES: usize = 16 * 1024;

/// Bytes of a comment's body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Bytes of an assignee (a CRM user, like a record's `owner`).
pub const MAX_ASSIGNEE_BYTES: usize = 200;

/// Tags one task may carry (each a slug: `stagecraft_rules::field::is_slug`).
pub const MAX_TAGS: usize = 16;

/// How far ahead a task may fall due: 366 days, like a follow-up.
pub const MAX_DUE_SECONDS: u64 = 366 * 24 * 3600;

/// How urgent a task is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }
}

fn text(what: &str, s: &str, max: usize, blank_ok: bool) -> Result<(), String> {
    if !blank_ok && s.trim().is_empty() {
        return Err(format!("{what} must not be blank"));
    }
    if s.len() > max {
        return Err(format!(
            "{what} is {} bytes; the limit is {max} bytes",
            s.len()
        ));
    }
    Ok(())
}

/// A task's title: 1-255 bytes, not blank.
pub fn check_title(title: &str) -> Result<(), String> {
    text("a task's title", title, MAX_TITLE_BYTES, false)
}

/// A task's description: at most 16 KiB (empty is fine).
pub fn check_description(description: &str) -> Result<(), String> {
    text(
        "a task's description",
        description,
        MAX_DESCRIPTION_BYTES,
        true,
    )
}

/// A comment's body: 1 byte to 16 KiB, not blank.
pub fn check_body(body: &str) -> Result<(), String> {
    text("a comment's body", body, MAX_BODY_BYTES, false)
}

/// A task's assignee: 1-200 bytes, not blank.
pub fn check_assignee(assignee: &str) -> Result<(), String> {
    text("a task's assignee", assignee, MAX_ASSIGNEE_BYTES, false)
}

/// How far ahead a task falls due, in seconds from now (for a run: from its event's time).
pub fn check_due_in(seconds: u64) -> Result<(), String> {
    if seconds > MAX_DUE_SECONDS {
        return Err(format!(
            "a task may fall due at most {MAX_DUE_SECONDS} seconds (366 days) ahead, not {seconds}"
        ));
    }
    Ok(())
}

/// A task's tags: at most 16, each a slug.
pub fn check_tags(tags: &[String]) -> Result<(), String> {
    if tags.len() > MAX_TAGS {
        return Err(format!(
            "a task has {} tags; the limit is {MAX_TAGS}",
            tags.len()
        ));
    }
    match tags.iter().find(|t| !crate::field::is_slug(t)) {
        Some(t) => Err(format!(
            "task tag {t:?} is not valid: it must be {}",
            crate::field::SLUG_RULE
        )),
        None => Ok(()),
    }
}

/// The whole of a new task, as both sides check it.
pub fn check_new(
    title: &str,
    description: Option<&str>,
    assignee: Option<&str>,
    due_in: Option<u64>,
) -> Result<(), String> {
    check_title(title)?;
    if let Some(d) = description {
        check_description(d)?;
    }
    if let Some(a) = assignee {
        check_assignee(a)?;
    }
    if let Some(s) = due_in {
        check_due_in(s)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_named_on_both_sides() {
        assert!(check_title(&"t".repeat(MAX_TITLE_BYTES)).is_ok());
        let e = check_title(&"t".repeat(MAX_TITLE_BYTES + 1)).unwrap_err();
        assert!(e.contains("title") && e.contains("255"), "{e}");
        assert!(check_title("  ").unwrap_err().contains("blank"));
        assert!(check_description("").is_ok());
        assert!(check_description(&"d".repeat(MAX_DESCRIPTION_BYTES + 1))
            .unwrap_err()
            .contains("16384"));
        assert!(check_body("").unwrap_err().contains("comment"));
        assert!(check_body(&"b".repeat(MAX_BODY_BYTES)).is_ok());
        assert!(check_due_in(MAX_DUE_SECONDS).is_ok());
        assert!(check_due_in(MAX_DUE_SECONDS + 1)
            .unwrap_err()
            .contains("366 days"));
        assert!(check_new("Call", None, Some(""), None)
            .unwrap_err()
            .contains("assignee"));
        assert_eq!(Priority::default().as_str(), "normal");
        assert!(check_tags(&["call".into(), "vip".into()]).is_ok());
        assert!(check_tags(&["a b".into()]).unwrap_err().contains("tag"));
        assert!(check_tags(&vec!["t".to_string(); MAX_TAGS + 1])
            .unwrap_err()
            .contains("16"));
    }
}

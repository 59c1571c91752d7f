//! The schema's rule for gallery and API key names (also a CHECK constraint in both
//! migrations): 1 to 64 of `A-Z a-z 0-9 . _ -`, so a name is safe in a log line, a list
//! and a URL without quoting.

use handmatch_proto::limits::MAX_NAME_CHARS;

/// `Err` names the field (`what`) and the rule the name breaks.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_CHARS {
        return Err(format!(
            "{what} {name:?} has {} characters, 1 to {MAX_NAME_CHARS} are allowed",
            name.chars().count()
        ));
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(c) => Err(format!(
            "{what} {name:?} contains {c:?}: only A-Z a-z 0-9 . _ - are allowed"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn names_follow_the_schema_rule() {
        for good in ["default", "a", "site-2.north_B", &"x".repeat(64)] {
            assert!(check_name("gallery", good).is_ok(), "{good}");
        }
        for (bad, says) in [
            ("", "1 to 64"),
            (&"x".repeat(65) as &str, "1 to 64"),
            ("a,b", "','"),
            ("a b", "' '"),
            ("é", "'é'"),
            ("*", "'*'"),
        ] {
            let err = check_name("gallery", bad).unwrap_err();
            assert!(err.contains(says) && err.starts_with("gallery"), "{err}");
        }
    }
}

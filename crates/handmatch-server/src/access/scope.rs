//! What a key may do. Each RPC needs exactly one scope (see the proto's header).

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Enroll,
    Identify,
    Verify,
    Delete,
    Read,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 6] = [
        Scope::Enroll,
        Scope::Identify,
        Scope::Verify,
        Scope::Delete,
        Scope::Read,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Enroll => "enroll",
            Scope::Identify => "identify",
            Scope::Verify => "verify",
            Scope::Delete => "delete",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                format!("unknown scope {s:?}: use enroll, identify, verify, delete, read or admin")
            })
    }
}

/// Parses a list, refusing unknown names; sorted, without repeats.
pub fn parse_scopes<S: AsRef<str>>(names: &[S]) -> Result<Vec<Scope>, String> {
    let mut scopes = names
        .iter()
        .map(|n| n.as_ref().trim().parse())
        .collect::<Result<Vec<Scope>, _>>()?;
    scopes.sort();
    scopes.dedup();
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_unknown_ones_are_named() {
        for s in Scope::ALL {
            assert_eq!(s.as_str().parse::<Scope>().unwrap(), s);
        }
        assert_eq!(
            parse_scopes(&["read", "enroll", "read"]).unwrap(),
            vec![Scope::Enroll, Scope::Read]
        );
        assert!(parse_scopes(&["write"]).unwrap_err().contains("\"write\""));
    }
}

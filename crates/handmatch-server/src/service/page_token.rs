//! ListSubjects' page token: opaque to clients, the hex of the last subject id of the
//! previous page. Anything else is refused with INVALID_ARGUMENT, never a panic.

use super::error::ServiceError;

pub fn encode(last_subject: &str) -> String {
    hex::encode(last_subject)
}

/// The subject id to continue after, or `None` for the first page (an empty token).
pub fn decode(token: &str) -> Result<Option<String>, ServiceError> {
    if token.is_empty() {
        return Ok(None);
    }
    let foreign = || ServiceError::invalid("page_token is not a token this server issued");
    let bytes = hex::decode(token).map_err(|_| foreign())?;
    let subject = String::from_utf8(bytes).map_err(|_| foreign())?;
    if subject.is_empty() {
        return Err(foreign());
    }
    Ok(Some(subject))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_foreign_ones_are_refused() {
        for id in ["a", "Zoë", "0000001", "x y"] {
            assert_eq!(decode(&encode(id)).unwrap().as_deref(), Some(id));
        }
        assert_eq!(decode("").unwrap(), None);
        for bad in ["zz", "abc", "ff", "c3"] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }
}

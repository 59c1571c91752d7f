//! Request checks shared by the RPCs; each message names the field and the limit.

use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use super::error::ServiceError;
use crate::store::check_name;
use handmatch_proto::limits::{
    DEFAULT_GALLERY, DEFAULT_PAGE_SIZE, DEFAULT_TOP_K, MAX_PAGE_SIZE, MAX_SUBJECT_ID_CHARS,
    MAX_TOP_K,
};

/// The gallery a request names: "default" when it names none.
pub fn gallery(name: &str) -> Result<String, ServiceError> {
    if name.is_empty() {
        return Ok(DEFAULT_GALLERY.to_string());
    }
    check_name("gallery", name).map_err(ServiceError::InvalidArgument)?;
    Ok(name.to_string())
}

/// The longest consent reference stored (also a CHECK in the schema).
pub const MAX_CONSENT_REFERENCE_CHARS: usize = 256;

/// A consent reference: printable, at most `MAX_CONSENT_REFERENCE_CHARS`; required with
/// --require-consent.
pub fn consent_reference(reference: Option<&str>, required: bool) -> Result<(), ServiceError> {
    let Some(r) = reference else {
        if required {
            return Err(ServiceError::invalid(
                "consent_reference is required: this server enrols only subjects whose \
                 consent is on record (--require-consent)",
            ));
        }
        return Ok(());
    };
    let chars = r.chars().count();
    if chars > MAX_CONSENT_REFERENCE_CHARS || r.chars().any(char::is_control) {
        return Err(ServiceError::invalid(format!(
            "consent_reference must be 1 to {MAX_CONSENT_REFERENCE_CHARS} printable \
             characters (it has {chars})"
        )));
    }
    Ok(())
}

pub fn subject_id(id: &str) -> Result<(), ServiceError> {
    let n = id.chars().count();
    if n == 0 {
        return Err(ServiceError::invalid("subject_id is empty"));
    }
    if n > MAX_SUBJECT_ID_CHARS {
        return Err(ServiceError::invalid(format!(
            "subject_id has {n} characters, at most {MAX_SUBJECT_ID_CHARS} are allowed"
        )));
    }
    // Controls and format characters (bidi overrides, zero-width joiners, …) make ids that
    // look alike yet differ.
    if let Some(c) = id
        .chars()
        .find(|c| c.is_control() || c.general_category() == GeneralCategory::Format)
    {
        return Err(ServiceError::invalid(format!(
            "subject_id contains the non-printable character U+{:04X}",
            c as u32
        )));
    }
    // One spelling per name: "é" as one code point or as "e" + U+0301 would be two subjects.
    let nfc = match is_nfc_quick(id.chars()) {
        IsNormalized::Yes => true,
        _ => id.nfc().eq(id.chars()),
    };
    if !nfc {
        return Err(ServiceError::invalid(
            "subject_id is not in Unicode normalisation form C (NFC); normalise it before sending",
        ));
    }
    if id.trim() != id {
        return Err(ServiceError::invalid(
            "subject_id has leading or trailing whitespace",
        ));
    }
    Ok(())
}

pub fn image_count(n: usize, max: usize) -> Result<(), ServiceError> {
    if n == 0 {
        return Err(ServiceError::invalid(
            "images is empty: at least one image is required",
        ));
    }
    if n > max {
        return Err(ServiceError::invalid(format!(
            "{n} images in one request, at most {max} are allowed"
        )));
    }
    Ok(())
}

pub fn top_k(k: Option<u32>) -> Result<usize, ServiceError> {
    match k.unwrap_or(DEFAULT_TOP_K) {
        k @ 1..=MAX_TOP_K => Ok(k as usize),
        k => Err(ServiceError::invalid(format!(
            "top_k is {k}, it must be between 1 and {MAX_TOP_K}"
        ))),
    }
}

pub fn page_size(n: Option<u32>) -> Result<u32, ServiceError> {
    listing_size("page_size", n)
}

/// How many rows a listing returns: 1 to `MAX_PAGE_SIZE`, `DEFAULT_PAGE_SIZE` when absent.
pub fn listing_size(field: &str, n: Option<u32>) -> Result<u32, ServiceError> {
    match n.unwrap_or(DEFAULT_PAGE_SIZE) {
        n @ 1..=MAX_PAGE_SIZE => Ok(n),
        n => Err(ServiceError::invalid(format!(
            "{field} is {n}, it must be between 1 and {MAX_PAGE_SIZE}"
        ))),
    }
}

pub fn score(name: &str, v: Option<f32>) -> Result<Option<f32>, ServiceError> {
    match v {
        Some(x) if !x.is_finite() || !(-1.0..=1.0).contains(&x) => Err(ServiceError::invalid(
            format!("{name} is {x}, it must be a cosine similarity in [-1, 1]"),
        )),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_ids() {
        assert!(subject_id("0000001").is_ok());
        assert!(subject_id("Ann Smith #2").is_ok());
        assert!(subject_id("").unwrap_err().to_string().contains("empty"));
        assert!(subject_id(&"x".repeat(10_000))
            .unwrap_err()
            .to_string()
            .contains("10000 characters"));
        assert!(subject_id("a\u{7}b")
            .unwrap_err()
            .to_string()
            .contains("U+0007"));
        assert!(subject_id(" a").is_err());
        assert!(subject_id("Zoë").is_ok(), "NFC is accepted");
        let decomposed = subject_id("Zoe\u{308}").unwrap_err().to_string();
        assert!(decomposed.contains("NFC"), "{decomposed}");
        for (id, code) in [
            ("ab\u{200B}c", "U+200B"),
            ("\u{202E}cba", "U+202E"),
            ("a\u{2066}b", "U+2066"),
            ("x\u{FEFF}", "U+FEFF"),
        ] {
            let err = subject_id(id).unwrap_err().to_string();
            assert!(err.contains(code), "{id:?}: {err}");
        }
    }

    #[test]
    fn limits() {
        assert_eq!(top_k(None).unwrap(), 10);
        assert!(top_k(Some(0)).is_err() && top_k(Some(1000)).is_err());
        assert!(
            image_count(0, 4).is_err() && image_count(5, 4).is_err() && image_count(4, 4).is_ok()
        );
        assert!(score("min_score", Some(f32::NAN)).is_err());
    }
}

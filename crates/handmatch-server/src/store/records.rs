//! What goes into and comes out of the store, and the small-integer codes the schema uses for
//! aspect and side.

use super::error::StoreError;
use handmatch_core::hand_image::{Aspect, Side};

/// Which hand a photo shows, when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandSide {
    Unknown,
    Left,
    Right,
}

impl From<Side> for HandSide {
    fn from(side: Side) -> Self {
        match side {
            Side::Left => HandSide::Left,
            Side::Right => HandSide::Right,
        }
    }
}

/// One template to enroll under the model given to [`super::TemplateStore::enroll`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewTemplate {
    /// The gallery the subject belongs to (a subject id is unique within its gallery).
    pub gallery: String,
    pub subject_id: String,
    pub aspect: Aspect,
    pub side: HandSide,
    /// SHA-256 of the image bytes, 64 hex digits (either case; stored lowercase).
    pub image_sha256: String,
    pub embedding: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EnrollOutcome {
    pub template_id: i64,
    /// False when the (subject, image, model) was already enrolled: `template_id` is the
    /// existing template's.
    pub created: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TemplateRecord {
    pub template_id: i64,
    pub gallery: String,
    pub subject_id: String,
    pub aspect: Aspect,
    pub side: HandSide,
    pub image_sha256: String,
    pub embedding: Vec<f32>,
    pub created_at_ms: i64,
}

/// A subject's template counts under one model.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectSummary {
    pub subject_id: String,
    pub dorsal_templates: u32,
    pub palmar_templates: u32,
}

// The codes are part of the schema (CHECK constraints in both migrations): never renumber.

pub(crate) fn aspect_code(aspect: Aspect) -> i16 {
    match aspect {
        Aspect::Dorsal => 1,
        Aspect::Palmar => 2,
    }
}

pub(crate) fn aspect_from_code(code: i16) -> Result<Aspect, StoreError> {
    match code {
        1 => Ok(Aspect::Dorsal),
        2 => Ok(Aspect::Palmar),
        other => Err(StoreError::Corrupt(format!(
            "aspect code {other} is neither 1 (dorsal) nor 2 (palmar)"
        ))),
    }
}

pub(crate) fn side_code(side: HandSide) -> i16 {
    match side {
        HandSide::Unknown => 0,
        HandSide::Left => 1,
        HandSide::Right => 2,
    }
}

pub(crate) fn side_from_code(code: i16) -> Result<HandSide, StoreError> {
    match code {
        0 => Ok(HandSide::Unknown),
        1 => Ok(HandSide::Left),
        2 => Ok(HandSide::Right),
        other => Err(StoreError::Corrupt(format!(
            "side code {other} is not 0 (unknown), 1 (left) or 2 (right)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for aspect in [Aspect::Dorsal, Aspect::Palmar] {
            assert_eq!(aspect_from_code(aspect_code(aspect)).unwrap(), aspect);
        }
        for side in [HandSide::Unknown, HandSide::Left, HandSide::Right] {
            assert_eq!(side_from_code(side_code(side)).unwrap(), side);
        }
        assert!(matches!(aspect_from_code(0), Err(StoreError::Corrupt(_))));
        assert!(matches!(side_from_code(3), Err(StoreError::Corrupt(_))));
    }
}

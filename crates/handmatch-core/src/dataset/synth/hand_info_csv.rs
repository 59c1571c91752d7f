//! `HandInfo.csv` exactly as the original 11k Hands file spells it: CRLF line ends, strings
//! double-quoted, numbers bare. Written by hand rather than with the `csv` crate, whose quoting
//! rules would leave the strings bare.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use super::error::SynthError;
use super::traits::SubjectTraits;
use crate::hand_image::{Aspect, Side};

pub(super) const HEADER: &str =
    "id,age,gender,skinColor,accessories,nailPolish,aspectOfHand,imageName,irregularities";

pub(super) struct HandInfoRow {
    subject_id: String,
    age: u32,
    gender: &'static str,
    skin_color: &'static str,
    accessories: bool,
    nail_polish: bool,
    aspect: Aspect,
    side: Side,
    image_name: String,
}

impl HandInfoRow {
    pub(super) fn new(
        subject_id: &str,
        traits: &SubjectTraits,
        aspect: Aspect,
        side: Side,
        image_name: String,
    ) -> Self {
        HandInfoRow {
            subject_id: subject_id.to_owned(),
            age: traits.age,
            gender: traits.gender,
            skin_color: traits.skin_color_name(),
            accessories: traits.ring.is_some(),
            nail_polish: traits.nail_polish.is_some(),
            aspect,
            side,
            image_name,
        }
    }

    fn write_line(&self, out: &mut String) {
        // Writing into a String cannot fail.
        let _ = write!(
            out,
            "\"{}\",{},\"{}\",\"{}\",{},{},\"{} {}\",\"{}\",0\r\n",
            self.subject_id,
            self.age,
            self.gender,
            self.skin_color,
            u8::from(self.accessories),
            u8::from(self.nail_polish),
            self.aspect.as_str(),
            self.side.as_str(),
            self.image_name,
        );
    }
}

/// Writes a temporary sibling first and renames it over `path`, so readers see either no CSV or
/// a complete one.
pub(super) fn write_atomically(path: &Path, rows: &[HandInfoRow]) -> Result<(), SynthError> {
    let mut text = String::with_capacity(100 * (rows.len() + 1));
    text.push_str(HEADER);
    text.push_str("\r\n");
    for row in rows {
        row.write_line(&mut text);
    }
    let temp = path.with_extension("csv.tmp");
    fs::write(&temp, text).map_err(SynthError::io(&temp))?;
    fs::rename(&temp, path).map_err(SynthError::io(path))
}

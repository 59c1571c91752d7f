//! Hand image datasets in the 11k Hands layout (`HandInfo.csv` + `Hands/*.jpg`): the loader,
//! subject-level splits, the synthetic generator and training augmentation.

pub mod augment;
pub mod hand_info;
pub mod split;
pub mod synth;

use std::path::PathBuf;

/// Which side of the hand the photo shows.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Aspect {
    /// The back of the hand: the query side.
    Dorsal,
    /// The palm: the gallery side.
    Palmar,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Left,
    Right,
}

impl Aspect {
    pub fn as_str(self) -> &'static str {
        match self {
            Aspect::Dorsal => "dorsal",
            Aspect::Palmar => "palmar",
        }
    }
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }
}

/// One row of `HandInfo.csv`, resolved to its image file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HandImage {
    /// Subject id, whitespace-trimmed.
    pub subject: String,
    pub aspect: Aspect,
    pub side: Side,
    pub image_name: String,
    pub path: PathBuf,
    pub age: Option<u32>,
    pub gender: String,
    pub skin_color: String,
    pub accessories: bool,
    pub nail_polish: bool,
    pub irregular: bool,
    /// 1-based line in `HandInfo.csv` (the header is line 1).
    pub line: usize,
}

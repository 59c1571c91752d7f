//! A photographed hand: which side of which hand, and the record of one image. Shared by
//! the dataset loader, the metrics, the service and the clients.

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

/// The four photo kinds, in the order the synthetic generator writes each subject's images.
pub const VIEWS: [(Aspect, Side); 4] = [
    (Aspect::Dorsal, Side::Right),
    (Aspect::Dorsal, Side::Left),
    (Aspect::Palmar, Side::Right),
    (Aspect::Palmar, Side::Left),
];

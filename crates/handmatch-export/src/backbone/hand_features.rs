//! Which feature groups the hand backbone emits (`--hand-features`), in a fixed order, so a
//! run can switch each one on or off and the artefact's description records the choice.

use std::fmt;
use std::str::FromStr;

/// One group of hand features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HandFeatureGroup {
    /// Pairwise world-landmark distances and bone cosines (400).
    Geometry,
    /// The landmark network's global-average-pooled trunk (1152).
    Trunk,
    /// Silhouette widths across the finger bones and bone lengths, in palm widths (65).
    Shape,
    /// The trunk's 14 × 14 map sampled at the 21 landmarks (21 × 112).
    Local,
    /// The 28 × 28 map at the landmarks and bone midpoints (41 × 40).
    LocalFine,
    /// The 56 × 56 map at the landmarks and bone midpoints (41 × 24).
    Local56,
    /// The 112 × 112 map at the landmarks and three points per bone (81 × 16).
    Local112,
}

impl HandFeatureGroup {
    pub const ALL: [HandFeatureGroup; 7] = [
        Self::Geometry,
        Self::Trunk,
        Self::Shape,
        Self::Local,
        Self::LocalFine,
        Self::Local56,
        Self::Local112,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Geometry => "geometry",
            Self::Trunk => "trunk",
            Self::Shape => "shape",
            Self::Local => "local",
            Self::LocalFine => "local-fine",
            Self::Local56 => "local-56",
            Self::Local112 => "local-112",
        }
    }
}

/// A non-empty set of groups; the features are concatenated in `HandFeatureGroup` order
/// whatever order the flag lists them in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandFeatureSet(Vec<HandFeatureGroup>);

impl HandFeatureSet {
    pub fn groups(&self) -> &[HandFeatureGroup] {
        &self.0
    }

    pub fn has(&self, group: HandFeatureGroup) -> bool {
        self.0.contains(&group)
    }
}

/// What the hand backbone emitted before the groups existed.
impl Default for HandFeatureSet {
    fn default() -> Self {
        Self(vec![HandFeatureGroup::Geometry, HandFeatureGroup::Trunk])
    }
}

impl FromStr for HandFeatureSet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut groups = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let group = HandFeatureGroup::ALL
                .into_iter()
                .find(|g| g.name() == name)
                .ok_or_else(|| {
                    format!("unknown hand feature group `{name}` (expected geometry, trunk, shape, local, local-fine, local-56 or local-112)")
                })?;
            groups.push(group);
        }
        groups.sort();
        groups.dedup();
        if groups.is_empty() {
            return Err("no hand feature group given".into());
        }
        Ok(Self(groups))
    }
}

impl fmt::Display for HandFeatureSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|g| g.name()).collect();
        f.write_str(&names.join("+"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_parse_in_a_fixed_order_and_bad_names_are_named() {
        let s: HandFeatureSet = "local, geometry,shape,geometry".parse().unwrap();
        assert_eq!(s.to_string(), "geometry+shape+local");
        assert!(s.has(HandFeatureGroup::Shape) && !s.has(HandFeatureGroup::Trunk));
        let e = "geometry,palm".parse::<HandFeatureSet>().unwrap_err();
        assert!(e.contains("`palm`"), "{e}");
        assert!(" , ".parse::<HandFeatureSet>().is_err());
        assert_eq!(HandFeatureSet::default().to_string(), "geometry+trunk");
    }
}

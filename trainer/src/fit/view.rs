//! Which side of the hand a training row shows.

use handmatch_core::hand_image::Aspect;

/// Dorsal rows are the queries and palmar rows the gallery, so the losses only ever
/// compare rows across views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    Dorsal,
    Palmar,
}

impl From<Aspect> for View {
    fn from(aspect: Aspect) -> Self {
        match aspect {
            Aspect::Dorsal => View::Dorsal,
            Aspect::Palmar => View::Palmar,
        }
    }
}

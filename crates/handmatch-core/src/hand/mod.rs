//! Hand alignment: find the hand with the landmark model, then warp it to a canonical,
//! upright, right-handed crop. The server, the trainer's feature extraction and the offline
//! evaluation all align through this one module, so a model sees the same pixels everywhere.

pub mod align;
pub mod coarse;
pub mod landmarks;
pub mod similarity;

pub use align::{AlignError, AlignedHand, AlignmentSpec, HandAligner};
pub use landmarks::{HandDetection, HandDetector, LANDMARKS, LANDMARK_INPUT};
pub use similarity::Similarity;

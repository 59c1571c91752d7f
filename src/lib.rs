//! handmatch: identify a person from the back of the hand against a gallery of palm photos.

pub mod dataset;
pub mod embed;

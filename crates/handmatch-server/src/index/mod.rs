//! The exact in-memory indexes of enrolled templates: `GalleryIndex` for one gallery and
//! `GalleryIndexes`, one per gallery, and how far they follow the store's change feed
//! (`IndexFreshness`).

mod by_gallery;
mod freshness;
mod gallery_index;

pub use by_gallery::GalleryIndexes;
pub use freshness::IndexFreshness;
pub use gallery_index::{GalleryIndex, IndexedTemplate, Match};

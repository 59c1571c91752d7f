//! The exact in-memory indexes of enrolled templates: `GalleryIndex` for one gallery and
//! `GalleryIndexes`, one per gallery.

mod by_gallery;
mod gallery_index;

pub use by_gallery::GalleryIndexes;
pub use gallery_index::{GalleryIndex, IndexedTemplate, Match};

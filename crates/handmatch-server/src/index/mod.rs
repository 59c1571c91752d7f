//! The exact in-memory indexes of enrolled templates: `GalleryIndex` for one gallery and
//! `GalleryIndexes`, one per gallery, and how far they follow the store's change feed
//! (`IndexFreshness`). Rows live in a `RowStore` (f32 or f16), scored by SIMD `kernels`
//! and cut to the best k as they come (`TopK`).

mod by_gallery;
mod freshness;
mod gallery_index;
mod kernels;
mod rows;
mod top_k;

pub use by_gallery::GalleryIndexes;
pub use freshness::IndexFreshness;
pub use gallery_index::{GalleryIndex, IndexSettings, IndexedTemplate, Match};
pub use kernels::{simd_level, SimdLevel};
pub use rows::IndexPrecision;

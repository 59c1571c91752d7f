//! Retrieval metrics for dorsal queries ranked against a palmar gallery. Rankings follow
//! the server's `GalleryIndex::search` exactly (f32 cosine descending, ties to the smaller
//! subject id), so an offline evaluation and one through the service report the same numbers.

pub mod chance;
pub mod error;
pub mod protocols;
pub mod rank;
pub mod summary;
pub mod wilson;

pub use error::MetricsError;
pub use protocols::{evaluate_protocols, Accessories, EmbeddedImage, ProtocolResults};
pub use rank::{rank_query, QueryRank};
pub use summary::{RecallAtK, RetrievalMetrics, RECALL_KS};

//! Embedding images with the artefact: the ONNX Runtime set-up, the artefact's metadata
//! contract and the session that runs it.

pub mod backbone_session;
pub mod decode;
pub mod jpeg_scaled;
pub mod metadata;
pub mod output_graph;
pub mod pool;
pub mod preprocess;
pub mod queue;
pub mod runtime;
pub mod session;

pub use metadata::ArtefactMetadata;
pub use pool::{EmbeddingPool, PoolLayout};
pub use runtime::{Device, ExecutionProviderKind, RuntimeOptions};
pub use session::{EmbedError, EmbeddingSession};

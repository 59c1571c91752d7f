//! Projection heads: the reference study's MLP, a linear projection and ensembles of them, their safetensors
//! files, their graph and their CPU function.

pub mod ensemble;
pub mod file;
pub mod linear;
pub mod mlp;
mod normalize;
pub mod projection;
pub mod single;

pub use ensemble::{EnsembleHead, EnsembleMember};
pub use linear::LinearHead;
pub use mlp::{names, MlpHead, BN_EPS, DEFAULT_HIDDEN};
pub use normalize::l2_normalize;
pub use projection::Head;
pub use single::SingleHead;

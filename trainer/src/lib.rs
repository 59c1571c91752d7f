//! handmatch-train: extracts backbone features, trains projection heads on them, exports
//! the artefact (through handmatch-export) and evaluates it offline.

pub mod artefact_writer;
pub mod cv;
pub mod evaluate;
pub mod extract;
pub mod finetune;
pub mod fit;
pub mod hand_int8;
pub mod lda;
pub mod pipeline;
pub mod recipe;
pub mod training;

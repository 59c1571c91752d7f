//! Fitting the projection head on cached backbone features: an MLP trained with candle
//! (validated every few epochs, the best kept by validation mean rank) or a closed-form
//! LDA projection; open-set thresholds from the validation subjects.

pub mod config;
pub mod data;
pub mod ensemble;
pub mod error;
pub mod gradient;
pub mod lda_head;
pub mod one_head;
pub mod open_set;
pub mod outcome;
pub mod run;
pub mod selection;

pub use config::{FitConfig, HeadKind, LossChoice};
pub use error::FitError;
pub use outcome::{EpochRecord, FitOutcome};
pub use run::fit;
pub use selection::{fit_selected, Selection, SelectionPlan};

//! `handmatch-train fit`: trains the projection head on cached backbone features with
//! candle, validates every few epochs, keeps the best head by validation mean rank, picks
//! open-set thresholds on the validation subjects and exports the artefact.

pub mod config;
pub mod open_set;
pub mod run;

pub use config::{FitConfig, LossChoice};
pub use run::{fit, FitOutcome};

//! Figures for evaluation reports, rendered to PNG without any system fonts or libraries.

pub mod error;
mod font;
pub mod plot;
mod png;

pub use error::PlotError;
pub use plot::{cmc_chart, histogram_chart, line_chart, Series};

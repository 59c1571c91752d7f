//! Text is rasterised from a DejaVu Sans compiled into the binary: servers and CI images
//! often have no fonts installed, and a chart without axis labels is useless.

use std::sync::OnceLock;

use plotters::style::{register_font, FontStyle};

use super::error::PlotError;

/// The family name the charts ask for; also plotters' default, so any text drawn with
/// default styles finds the embedded font too.
pub(crate) const FAMILY: &str = "sans-serif";

/// Registers the embedded font once per process.
pub(crate) fn ensure_registered() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        register_font(FAMILY, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && register_font(FAMILY, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError::FontRegistration)
    }
}

//! The progress bar every long job shows (indicatif), one style for all of them.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` items called `unit`, prefixed by `label`; hidden when `visible` is false
/// (tests, quiet runs).
pub fn bar(len: u64, label: &str, unit: &str, visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let template = format!("{label} [{{bar:40}}] {{pos}}/{{len}} {unit} {{per_sec}} eta {{eta}}");
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&template)
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

//! The quality gate's comparison between any two artefacts, for probes the exporter does not
//! run itself (an artefact built on a hand network quantised elsewhere, say): each image of
//! a folder (the first 64 by name) through both, prepared as the server prepares it.
//!
//! Usage: cargo run --release -p handmatch-export --example compare_artefacts -- \
//!     REFERENCE.onnx CANDIDATE.onnx IMAGES_DIR

use std::path::Path;

use handmatch_core::embed::RuntimeOptions;
use handmatch_export::quality_gate::{compare, Calibration};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [reference, candidate, images] = args.as_slice() else {
        return Err("usage: compare_artefacts REFERENCE.onnx CANDIDATE.onnx IMAGES_DIR".into());
    };
    let calibration = Calibration::from_dir(Path::new(images))?;
    let report = compare(
        Path::new(reference),
        Path::new(candidate),
        &calibration,
        &RuntimeOptions::default(),
    )?;
    println!(
        "{} images: cosine mean {:.4}, worst {:.4} ({})",
        report.images, report.mean_cosine, report.worst_cosine, report.worst_image
    );
    Ok(())
}

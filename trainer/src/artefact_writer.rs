//! Writing the service's artefact at the precision asked for: fp32 as built, or int8 after
//! the quality gate has compared both on calibration images. Shared by `export` and `fit`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use handmatch_core::embed::{ArtefactMetadata, RuntimeOptions};
use handmatch_export::onnx::quantize::QuantizeOptions;
use handmatch_export::onnx::ModelFile;
use handmatch_export::precision::{record_gate, to_int8};
use handmatch_export::quality_gate::{compare, Calibration};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Quantize {
    /// int8 weights per output column, activations quantised at run time.
    Int8,
}

#[derive(Args, Debug, Clone, Default)]
pub struct PrecisionArgs {
    /// Quantise the artefact's matrix products (dynamic int8). The export fails unless every
    /// calibration image's int8 embedding has a cosine of at least 0.99 to its fp32 one.
    #[arg(long, value_enum, env = "HANDMATCH_QUANTIZE")]
    pub quantize: Option<Quantize>,
    /// Images for that check: a folder of JPEG/PNG/WebP files (the first 64 by name).
    /// Default: 16 synthetic hands.
    #[arg(long, requires = "quantize")]
    pub calibration: Option<PathBuf>,
}

/// Writes `model` to `out` (atomically); with `--quantize int8`, the gated int8 artefact.
/// Returns the metadata written.
pub fn write_artefact(
    mut model: ModelFile,
    mut meta: ArtefactMetadata,
    out: &Path,
    precision: &PrecisionArgs,
    runtime: &RuntimeOptions,
) -> anyhow::Result<ArtefactMetadata> {
    if precision.quantize.is_none() {
        model
            .save(out)
            .with_context(|| format!("writing {}", out.display()))?;
        return Ok(meta);
    }
    let calibration = match &precision.calibration {
        Some(dir) => Calibration::from_dir(dir)?,
        None => Calibration::synthetic(0)?,
    };
    let scratch = tempfile::tempdir().context("a scratch folder for the quality gate")?;
    let fp32 = scratch.path().join("fp32.onnx");
    let int8 = scratch.path().join("int8.onnx");
    model
        .clone()
        .save(&fp32)
        .context("writing the fp32 reference")?;
    let quantized = to_int8(&mut model, &mut meta, QuantizeOptions::default());
    anyhow::ensure!(
        quantized.matmuls > 0,
        "--quantize int8: this artefact has no matrix product to quantise ({} in its head, \
         which stays fp32; convolutions, such as the hand landmark network's, are not \
         quantised); export it without --quantize",
        quantized.head_matmuls_kept
    );
    model
        .clone()
        .save(&int8)
        .context("writing the int8 candidate")?;
    let gate = compare(&fp32, &int8, &calibration, runtime)?.check()?;
    eprintln!(
        "int8: {} matrix products quantised ({:.1} MB of fp32 weights → {:.1} MB; the head's {} \
         stay fp32); cosine to fp32 over {} calibration images: mean {:.4}, worst {:.4} ({})",
        quantized.matmuls,
        quantized.fp32_bytes as f64 / 1e6,
        quantized.int8_bytes as f64 / 1e6,
        quantized.head_matmuls_kept,
        gate.images,
        gate.mean_cosine,
        gate.worst_cosine,
        gate.worst_image
    );
    record_gate(&mut model, &quantized, &gate);
    model
        .save(out)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(meta)
}

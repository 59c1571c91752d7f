//! Writing the service's artefact at the precision asked for: fp32 as built, or int8 or
//! fp16 after the quality gate has compared it with fp32 on calibration images. Shared by
//! `export` and `fit`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use handmatch_core::embed::{ArtefactMetadata, RuntimeOptions};
use handmatch_export::backbone::BackboneSpec;
use handmatch_export::onnx::quantize::QuantizeOptions;
use handmatch_export::onnx::ModelFile;
use handmatch_export::precision::{fp16_summary, int8_summary, record_gate, to_fp16, to_int8};
use handmatch_export::quality_gate::{compare, Calibration};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Reduced {
    /// int8 weights per output column, activations quantised at run time: for CPUs.
    Int8,
    /// The backbone in fp16, the head in fp32: for GPU providers (on a CPU, ONNX Runtime
    /// runs it by casting back to fp32, slower than fp32).
    Fp16,
}

#[derive(Args, Debug, Clone, Default)]
pub struct PrecisionArgs {
    /// Write the artefact in reduced precision (`--quantize` is the same flag). The export
    /// fails unless every calibration image's embedding has a cosine of at least 0.99 to
    /// its fp32 one. Without it: fp32.
    #[arg(
        long,
        visible_alias = "quantize",
        value_enum,
        env = "HANDMATCH_PRECISION"
    )]
    pub precision: Option<Reduced>,
    /// Images for that check: a folder of JPEG/PNG/WebP files (the first 64 by name).
    /// Default: 16 synthetic hands.
    #[arg(long, requires = "precision")]
    pub calibration: Option<PathBuf>,
}

/// With `--precision int8`, a hand backbone's features may come from the int8 network that
/// `quantize-hand` writes (`--hand-embedding-model`): then the gate compares the artefact
/// with the same artefact on the fp32 network, which `build` makes from the spec without
/// it. `None` in every other case (the gate compares with the model as built).
pub fn hand_fp32_reference(
    spec: &BackboneSpec,
    precision: &PrecisionArgs,
    build: impl FnOnce(&BackboneSpec) -> anyhow::Result<ModelFile>,
) -> anyhow::Result<Option<ModelFile>> {
    if precision.precision != Some(Reduced::Int8) || spec.hand_embedding.is_none() {
        return Ok(None);
    }
    let fp32 = BackboneSpec {
        hand_embedding: None,
        ..spec.clone()
    };
    build(&fp32).map(Some)
}

/// Writes `model` to `out` (atomically); with `--precision int8|fp16`, the gated artefact in
/// that precision, compared with `fp32_reference` (`hand_fp32_reference`) or else with
/// `model` as given. Returns the metadata written.
pub fn write_artefact(
    mut model: ModelFile,
    mut meta: ArtefactMetadata,
    fp32_reference: Option<ModelFile>,
    out: &Path,
    precision: &PrecisionArgs,
    runtime: &RuntimeOptions,
) -> anyhow::Result<ArtefactMetadata> {
    let Some(reduced) = precision.precision else {
        model
            .save(out)
            .with_context(|| format!("writing {}", out.display()))?;
        return Ok(meta);
    };
    let calibration = match &precision.calibration {
        Some(dir) => Calibration::from_dir(dir)?,
        None => Calibration::synthetic(0)?,
    };
    let scratch = tempfile::tempdir().context("a scratch folder for the quality gate")?;
    let fp32 = scratch.path().join("fp32.onnx");
    let candidate = scratch.path().join("candidate.onnx");
    let int8_network = fp32_reference.is_some();
    fp32_reference
        .unwrap_or_else(|| model.clone())
        .save(&fp32)
        .context("writing the fp32 reference")?;
    let (summary, done) = match reduced {
        Reduced::Int8 => int8(&mut model, &mut meta, int8_network)?,
        Reduced::Fp16 => fp16(&mut model, &mut meta)?,
    };
    model
        .clone()
        .save(&candidate)
        .with_context(|| format!("writing the {} candidate", meta.precision.as_str()))?;
    let gate = compare(&fp32, &candidate, &calibration, runtime)?.check()?;
    eprintln!(
        "{done}; cosine to fp32 over {} calibration images: mean {:.4}, worst {:.4} ({})",
        gate.images, gate.mean_cosine, gate.worst_cosine, gate.worst_image
    );
    record_gate(&mut model, summary, &gate);
    model
        .save(out)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(meta)
}

/// The int8 rewrite: its metadata summary and a line saying what it did. `int8_network`:
/// the hand network computing the features is already int8 (`quantize-hand`).
fn int8(
    model: &mut ModelFile,
    meta: &mut ArtefactMetadata,
    int8_network: bool,
) -> anyhow::Result<(serde_json::Value, String)> {
    let quantized = to_int8(model, meta, QuantizeOptions::default());
    anyhow::ensure!(
        quantized.matmuls > 0 || int8_network,
        "--precision int8: this artefact has no matrix product to quantise ({} in its head, \
         which stays fp32). A hand landmark network's convolutions are quantised by \
         `handmatch-train quantize-hand --data DIR --out NET`: pass NET as \
         --hand-embedding-model",
        quantized.head_matmuls_kept
    );
    let mut done = format!(
        "int8: {} matrix products quantised ({:.1} MB of fp32 weights → {:.1} MB; the head's {} \
         stay fp32)",
        quantized.matmuls,
        quantized.fp32_bytes as f64 / 1e6,
        quantized.int8_bytes as f64 / 1e6,
        quantized.head_matmuls_kept,
    );
    let mut summary = int8_summary(&quantized);
    if int8_network {
        done.push_str("; the hand network's features come from its int8 version");
        summary["hand_network"] =
            "static int8 (handmatch-train quantize-hand); alignment fp32".into();
    }
    Ok((summary, done))
}

/// The fp16 conversion: its metadata summary and a line saying what it did.
fn fp16(
    model: &mut ModelFile,
    meta: &mut ArtefactMetadata,
) -> anyhow::Result<(serde_json::Value, String)> {
    let half = to_fp16(model, meta)?;
    let done = format!(
        "fp16: {} nodes in fp16, {} in fp32 (the head on); {} weights, {:.1} MB → {:.1} MB",
        half.fp16_nodes,
        half.fp32_nodes,
        half.weights,
        half.fp32_bytes as f64 / 1e6,
        half.fp16_bytes as f64 / 1e6,
    );
    Ok((fp16_summary(&half), done))
}

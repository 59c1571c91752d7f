//! The quality gate of int8 and fp16 artefacts: the same images through the fp32 artefact
//! and the candidate, decoded and prepared exactly as the server does; every image's
//! embeddings must agree to a cosine of at least the bound, or the export fails naming the
//! worst image.

use std::path::{Path, PathBuf};

use handmatch_core::dataset::synth::{generate, SynthOptions};
use handmatch_core::embed::decode::DecodeLimits;
use handmatch_core::embed::metadata::Precision;
use handmatch_core::embed::preprocess::{decode_for_model, model_input};
use handmatch_core::embed::{EmbeddingSession, RuntimeOptions};
use handmatch_core::template::cosine;

use crate::error::{ExportError, Result};

/// The cosine every calibration image must reach.
pub const MIN_COSINE: f32 = 0.99;
/// A calibration folder is read up to this many images (sorted by name).
const MAX_IMAGES: usize = 64;

/// Encoded images, each with the name errors report.
pub struct Calibration {
    pub images: Vec<(String, Vec<u8>)>,
}

impl Calibration {
    /// The JPEG, PNG and WebP files of `dir`, sorted by name, at most 64.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(ExportError::io(dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
                ["jpg", "jpeg", "png", "webp"].contains(&ext.to_ascii_lowercase().as_str())
            })
            .collect();
        paths.sort();
        paths.truncate(MAX_IMAGES);
        if paths.is_empty() {
            return Err(ExportError::Argument {
                field: "calibration".into(),
                reason: format!("{} holds no JPEG, PNG or WebP image", dir.display()),
            });
        }
        let images = paths
            .iter()
            .map(|p| {
                let bytes = std::fs::read(p).map_err(ExportError::io(p))?;
                Ok((p.display().to_string(), bytes))
            })
            .collect::<Result<_>>()?;
        Ok(Self { images })
    }

    /// Sixteen synthetic hands at 640 x 480 (both sides, both aspects, four people), drawn
    /// from `seed`: what the gate uses when no folder is given.
    pub fn synthetic(seed: u64) -> Result<Self> {
        let dir = tempfile::tempdir().map_err(ExportError::io(std::env::temp_dir()))?;
        let opts = SynthOptions {
            subjects: 4,
            seed,
            width: 640,
            height: 480,
            per_view_min: 1,
            per_view_max: 1,
        };
        generate(&opts, dir.path()).map_err(|e| ExportError::Argument {
            field: "calibration".into(),
            reason: format!("synthetic hands: {e}"),
        })?;
        let mut calibration = Self::from_dir(&dir.path().join("Hands"))?;
        // The folder is gone once this returns: name the images by file alone.
        for (name, _) in &mut calibration.images {
            let file = Path::new(name.as_str()).file_name().unwrap_or_default();
            *name = format!("synthetic {} (seed {seed})", file.to_string_lossy());
        }
        Ok(calibration)
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GateReport {
    /// The candidate's precision.
    pub precision: Precision,
    /// Images both artefacts embedded (hand models leave out images without a hand).
    pub images: usize,
    pub mean_cosine: f32,
    pub worst_cosine: f32,
    pub worst_image: String,
    pub min_cosine: f32,
}

/// Embeds `calibration` with the fp32 artefact and the candidate and compares them image by
/// image.
pub fn compare(
    fp32: &Path,
    candidate: &Path,
    calibration: &Calibration,
    runtime: &RuntimeOptions,
) -> Result<GateReport> {
    let (_, reference) = embed_all(fp32, calibration, runtime)?;
    let (precision, quantized) = embed_all(candidate, calibration, runtime)?;
    let mut cosines = Vec::new();
    for (i, (r, q)) in reference.iter().zip(&quantized).enumerate() {
        if let (Some(r), Some(q)) = (r, q) {
            cosines.push((cosine(r, q), i));
        }
    }
    let Some(&(worst_cosine, worst)) = cosines.iter().min_by(|a, b| a.0.total_cmp(&b.0)) else {
        return Err(ExportError::Argument {
            field: "calibration".into(),
            reason: "no calibration image was embedded by both artefacts".into(),
        });
    };
    Ok(GateReport {
        precision,
        images: cosines.len(),
        mean_cosine: cosines.iter().map(|c| c.0).sum::<f32>() / cosines.len() as f32,
        worst_cosine,
        worst_image: calibration.images[worst].0.clone(),
        min_cosine: MIN_COSINE,
    })
}

impl GateReport {
    /// `Err` naming the worst image when it falls under the bound.
    pub fn check(self) -> Result<Self> {
        if self.worst_cosine >= self.min_cosine {
            return Ok(self);
        }
        Err(ExportError::QualityGate {
            precision: self.precision.as_str(),
            worst_cosine: self.worst_cosine,
            image: self.worst_image,
            min_cosine: self.min_cosine,
            images: self.images,
        })
    }
}

/// The model's precision and one embedding per image (`None`: no hand found), prepared as
/// the server prepares it.
fn embed_all(
    model: &Path,
    calibration: &Calibration,
    runtime: &RuntimeOptions,
) -> Result<(Precision, Vec<Option<Vec<f32>>>)> {
    let runtime_error = |e: &dyn std::fmt::Display| ExportError::Runtime {
        path: model.into(),
        reason: e.to_string(),
    };
    let mut session = EmbeddingSession::open(model, runtime).map_err(|e| runtime_error(&e))?;
    let meta = session.metadata().clone();
    let mut inputs = Vec::with_capacity(calibration.images.len());
    for (name, bytes) in &calibration.images {
        let rgb = decode_for_model(bytes, &DecodeLimits::default(), &meta).map_err(|e| {
            ExportError::Argument {
                field: "calibration".into(),
                reason: format!("{name}: {e}"),
            }
        })?;
        inputs.push(model_input(&meta, rgb));
    }
    let mut out = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(8) {
        let rows = session
            .embed_inputs(&chunk.iter().collect::<Vec<_>>())
            .map_err(|e| runtime_error(&e))?;
        out.extend(rows.into_iter().map(|r| r.ok()));
    }
    Ok((meta.precision, out))
}

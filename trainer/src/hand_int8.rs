//! `quantize-hand`'s work: the hand landmark network in static int8, calibrated on aligned
//! crops of real hands and compared with fp32 on other crops, written with what was done
//! and measured in its metadata, for `--hand-embedding-model`.

use std::path::Path;

use handmatch_core::atomic_file::AtomicFile;
use handmatch_core::embed::runtime::{open_model, ModelSource, SessionSharing};
use handmatch_core::embed::RuntimeOptions;
use handmatch_export::backbone::hand_int8::{quantise_hand_network, HandInt8Options};
use handmatch_export::onnx::conv_int8::ConvInt8Report;
use handmatch_export::onnx::proto::{ModelProto, StringStringEntryProto};
use ndarray::{Array2, Array4, Axis};
use ort::value::TensorRef;
use prost::Message;

use crate::finetune::AlignedCrops;

/// The metadata key of the written network's summary.
pub const SUMMARY_KEY: &str = "handmatch.quantization";
/// Crops per ONNX Runtime call.
const BATCH: usize = 8;

/// How the int8 network's outputs compare with fp32's on the same crops.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Agreement {
    pub images: usize,
    /// Cosine between the pooled trunk features (the trunk feature group).
    pub pooled_cosine_mean: f32,
    pub pooled_cosine_worst: f32,
    /// Landmark error in pixels of the 224 input, per coordinate (x and y).
    pub landmark_px_mean: f32,
    pub landmark_px_worst: f32,
}

/// Crops `indices` as the network's input: `[n, 3, side, side]` in [0, 1], in batches.
pub fn network_batches(crops: &AlignedCrops, indices: &[usize]) -> Vec<Array4<f32>> {
    let s = crops.side as usize;
    indices
        .chunks(BATCH)
        .map(|chunk| {
            let images: Vec<_> = chunk.iter().map(|&i| crops.crop(i)).collect();
            Array4::from_shape_fn((chunk.len(), 3, s, s), |(n, c, y, x)| {
                images[n].get_pixel(x as u32, y as u32)[c] as f32 / 255.0
            })
        })
        .collect()
}

/// Quantises the network at `network`, compares it with fp32 on `evaluation`.
pub fn quantise_and_compare(
    network: &Path,
    calibration: &[Array4<f32>],
    evaluation: &[Array4<f32>],
    opts: HandInt8Options,
    runtime: &RuntimeOptions,
) -> anyhow::Result<(ModelProto, ConvInt8Report, Agreement)> {
    let (int8, report) = quantise_hand_network(network, calibration, opts, runtime)?;
    let fp32 = std::fs::read(network)?;
    let agreement = agreement(&fp32, &int8.encode_to_vec(), evaluation, runtime)?;
    Ok((int8, report, agreement))
}

/// Runs both networks on `batches` and compares their pooled features and landmarks.
pub fn agreement(
    fp32: &[u8],
    int8: &[u8],
    batches: &[Array4<f32>],
    runtime: &RuntimeOptions,
) -> anyhow::Result<Agreement> {
    let (a, b) = (
        outputs(fp32, batches, runtime)?,
        outputs(int8, batches, runtime)?,
    );
    let cosines: Vec<f32> =
        a.0.axis_iter(Axis(0))
            .zip(b.0.axis_iter(Axis(0)))
            .map(|(x, y)| x.dot(&y) / (x.dot(&x).sqrt() * y.dot(&y).sqrt()).max(1e-12))
            .collect();
    // x and y of each of the 21 landmarks; z is relative depth, not pixels.
    let errors: Vec<f32> = (&a.1 - &b.1)
        .indexed_iter()
        .filter(|((_, j), _)| j % 3 != 2)
        .map(|(_, v)| v.abs())
        .collect();
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len().max(1) as f32;
    Ok(Agreement {
        images: cosines.len(),
        pooled_cosine_mean: mean(&cosines),
        pooled_cosine_worst: cosines.iter().copied().fold(1.0, f32::min),
        landmark_px_mean: mean(&errors),
        landmark_px_worst: errors.iter().copied().fold(0.0, f32::max),
    })
}

/// `pooled` `[N, 1152]` and `landmarks` `[N, 63]` of a hand network over `batches`.
fn outputs(
    model: &[u8],
    batches: &[Array4<f32>],
    runtime: &RuntimeOptions,
) -> anyhow::Result<(Array2<f32>, Array2<f32>)> {
    let (mut session, _) = open_model(
        ModelSource::Bytes(model),
        runtime,
        &SessionSharing::default(),
    )?;
    let (mut pooled, mut landmarks) = (Vec::new(), Vec::new());
    for batch in batches {
        let out =
            session.run(ort::inputs!["image" => TensorRef::from_array_view(batch.view())?])?;
        pooled.extend(out["pooled"].try_extract_array::<f32>()?.iter().copied());
        landmarks.extend(out["landmarks"].try_extract_array::<f32>()?.iter().copied());
    }
    let n: usize = batches.iter().map(|b| b.shape()[0]).sum();
    Ok((
        Array2::from_shape_vec((n, pooled.len() / n.max(1)), pooled)?,
        Array2::from_shape_vec((n, landmarks.len() / n.max(1)), landmarks)?,
    ))
}

/// Writes `model` to `out` with `summary` in its metadata.
pub fn write_network(
    mut model: ModelProto,
    summary: &serde_json::Value,
    out: &Path,
) -> anyhow::Result<()> {
    model.metadata_props.retain(|p| p.key() != SUMMARY_KEY);
    model.metadata_props.push(StringStringEntryProto {
        key: Some(SUMMARY_KEY.into()),
        value: Some(summary.to_string()),
    });
    AtomicFile::write(out, &model.encode_to_vec())?;
    Ok(())
}

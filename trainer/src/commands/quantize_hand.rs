//! `handmatch-train quantize-hand`: the hand landmark network in static int8, calibrated on
//! aligned crops of a dataset's hands, for `--hand-embedding-model` (alignment keeps the
//! fp32 network). Refuses to write a network whose pooled features fall under a cosine of
//! 0.99 to fp32 on any evaluation crop.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use handmatch_export::backbone::hand::DEFAULT_MODEL;
use handmatch_export::backbone::hand_int8::HandInt8Options;
use handmatch_export::backbone::BackboneSpec;
use handmatch_export::onnx::quantize::DEFAULT_WEIGHT_MAX;
use handmatch_export::quality_gate::MIN_COSINE;
use handmatch_trainer::finetune::AlignedCrops;
use handmatch_trainer::hand_int8::{network_batches, quantise_and_compare, write_network};
use handmatch_trainer::pipeline::export_backbone;

use super::{DataArgs, RuntimeArgs};

#[derive(Args)]
pub struct QuantizeHandArgs {
    #[command(flatten)]
    pub dataset: DataArgs,
    /// The fp32 hand landmark model.
    #[arg(long, env = "HANDMATCH_HAND_MODEL", default_value = DEFAULT_MODEL)]
    pub hand_model: PathBuf,
    /// Aligned crops that calibrate the ranges: the last ones, in dataset order.
    #[arg(long, default_value_t = 128)]
    pub calibration_images: usize,
    /// Aligned crops the result is compared with fp32 on: the first ones (never calibrated on).
    #[arg(long, default_value_t = 256)]
    pub evaluation_images: usize,
    /// Largest int8 weight magnitude. 63 (as for the exporter's matrix products) cannot
    /// saturate the 16-bit pair sums of CPUs without VNNI, so the network is exact on every
    /// x86 CPU; 127 is a little closer to fp32 on CPUs with VNNI.
    #[arg(long, default_value_t = DEFAULT_WEIGHT_MAX, value_parser = clap::value_parser!(i8).range(1..=127))]
    pub weight_max: i8,
    /// Quantise the stem convolution too (it reads the image; fp32 by default).
    #[arg(long)]
    pub int8_stem: bool,
    /// Plain QDQ: no bounded equalisation, no bias correction (for comparison).
    #[arg(long)]
    pub no_corrections: bool,
    /// Where aligned crops are cached between runs (default: a temporary folder).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: QuantizeHandArgs) -> anyhow::Result<()> {
    let (dataset, _) = a.dataset.load()?;
    let images: Vec<_> = dataset.images.iter().collect();
    let work = tempfile::tempdir().context("a scratch folder")?;
    let aligner = work.path().join("hand-backbone.onnx");
    export_backbone(&BackboneSpec::hand(&a.hand_model), 224, &aligner)?;
    let cache = a
        .cache
        .clone()
        .unwrap_or_else(|| work.path().join("crops.safetensors"));
    let runtime = a.runtime.options();
    let crops = AlignedCrops::build(&images, &aligner, &cache, &runtime, true)?;
    anyhow::ensure!(
        crops.len() > a.calibration_images,
        "{} aligned crops: fewer than --calibration-images {} plus one to compare on",
        crops.len(),
        a.calibration_images
    );
    let first_calibrated = crops.len() - a.calibration_images;
    let evaluation: Vec<usize> = (0..a.evaluation_images.min(first_calibrated)).collect();
    let calibration: Vec<usize> = (first_calibrated..crops.len()).collect();
    let opts = HandInt8Options {
        weight_max: a.weight_max,
        int8_stem: a.int8_stem,
        corrections: !a.no_corrections,
    };
    let (int8, report, agreement) = quantise_and_compare(
        &a.hand_model,
        &network_batches(&crops, &calibration),
        &network_batches(&crops, &evaluation),
        opts,
        &runtime,
    )?;
    println!(
        "int8: {} convolutions and {} additions ({} kept fp32), {} values in u8; \
         {} pairs equalised ({} channels), {} biases corrected",
        report.qdq.convs,
        report.qdq.adds,
        report.qdq.kept_fp32,
        report.qdq.activations,
        report.equalised_pairs,
        report.equalised_channels,
        report.bias_corrected_convs
    );
    println!(
        "against fp32 on {} crops: pooled cosine mean {:.4}, worst {:.4}; landmarks {:.2} px \
         mean, {:.1} px worst",
        agreement.images,
        agreement.pooled_cosine_mean,
        agreement.pooled_cosine_worst,
        agreement.landmark_px_mean,
        agreement.landmark_px_worst
    );
    anyhow::ensure!(
        agreement.pooled_cosine_worst >= MIN_COSINE,
        "the int8 network's pooled features reach a cosine of only {:.4} to fp32 (under {MIN_COSINE}); not written",
        agreement.pooled_cosine_worst
    );
    let summary = serde_json::json!({
        "method": if opts.corrections {
            "static QDQ after bounded equalisation and bias correction"
        } else {
            "static QDQ"
        },
        "weights": format!("int8 per output channel, ±{}", opts.weight_max),
        "activations": "uint8 per tensor, calibrated range (min/max)",
        "stem": if opts.int8_stem { "int8" } else { "fp32" },
        "source": a.hand_model.display().to_string(),
        "report": report,
        "agreement": agreement,
    });
    write_network(int8, &summary, &a.out)?;
    println!("wrote {}", a.out.display());
    Ok(())
}

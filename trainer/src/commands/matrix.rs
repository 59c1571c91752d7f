//! `handmatch-train matrix`: {ResNet-50, DINOv2} × {contrastive, triplet + hard mining} on
//! one dataset and split; a Markdown table and a comparison plot.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use handmatch_core::dataset::split::Subset;
use handmatch_core::hand::LANDMARK_INPUT;
use handmatch_core::metrics::ProtocolResults;
use handmatch_core::report::plot::cmc_chart;
use handmatch_export::backbone::BackboneSpec;
use handmatch_trainer::evaluate::{embed_images, score};
use handmatch_trainer::pipeline::{images_of, run_fit, FitJob, FitReport};
use handmatch_trainer::training::FitConfig;

use super::{DataSplitArgs, RuntimeArgs};

#[derive(Args)]
pub struct MatrixArgs {
    /// DINOv2 checkpoint.
    #[arg(long)]
    pub dinov2: Option<PathBuf>,
    /// ResNet checkpoint.
    #[arg(long)]
    pub resnet: Option<PathBuf>,
    /// Input side for the checkpoints (hand models always take 224).
    #[arg(long, default_value_t = 224)]
    pub image_size: usize,
    /// Adds the hand-landmarks backbone (and dinov2+hand-landmarks when --dinov2 is given),
    /// from this imported hand model.
    #[arg(long)]
    pub hand_model: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataSplitArgs,
    #[arg(long, default_value_t = 8)]
    pub views: usize,
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

pub fn run(a: MatrixArgs) -> anyhow::Result<()> {
    let (ds, split) = a.data.load()?;
    let test_images = images_of(&ds, &split.subject_set(Subset::Test));
    let mut rows = String::from(
        "| backbone | loss | test R@1 | R@5 | R@10 | mean rank | image→template R@1 | extract s | fit s |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut curves = Vec::new();
    for (backbone, spec, image_size) in backbones(&a)? {
        for (loss, mut cfg) in [
            ("contrastive", FitConfig::reference_contrastive()),
            ("triplet batch-hard", FitConfig::reference_triplet()),
        ] {
            cfg.epochs = a.epochs;
            cfg.seed = a.seed;
            let out = a.out.join(format!("{backbone}-{}", loss.replace(' ', "-")));
            let started = Instant::now();
            let report = run_fit(&FitJob {
                backbone: spec.clone(),
                image_size,
                data: &ds,
                split: &split,
                cache: a.out.join(format!("features-{backbone}.safetensors")),
                out: out.clone(),
                views: a.views,
                config: cfg,
                selection: None,
                runtime: a.runtime.options(),
                batch_size: a.runtime.batch_size,
                progress: true,
                precision: Default::default(),
                fine_tune: None,
            })?;
            let embedded = embed_images(
                &report.model,
                &test_images,
                &a.runtime.options(),
                a.runtime.batch_size,
                true,
            )?;
            let results = score(&embedded.images, &embedded.embeddings)?;
            rows += &row(backbone, loss, &results, &report);
            curves.push((
                format!("{backbone}, {loss}"),
                results.template_to_template.cmc.clone(),
            ));
            std::fs::write(
                out.join("test-results.json"),
                serde_json::to_string_pretty(&results)? + "\n",
            )?;
            eprintln!(
                "{backbone} / {loss}: done in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    std::fs::create_dir_all(&a.out)?;
    std::fs::write(a.out.join("results.md"), &rows)?;
    cmc_chart(
        &a.out.join("comparison.png"),
        "Test CMC (template → template)",
        &curves,
    )?;
    print!("{rows}");
    Ok(())
}

/// The backbones the flags name: (label, spec, input size).
fn backbones(a: &MatrixArgs) -> anyhow::Result<Vec<(&'static str, BackboneSpec, usize)>> {
    let mut out = Vec::new();
    if let Some(r) = &a.resnet {
        out.push(("resnet", BackboneSpec::checkpoint(r), a.image_size));
    }
    if let Some(d) = &a.dinov2 {
        out.push(("dinov2", BackboneSpec::checkpoint(d), a.image_size));
    }
    if let Some(h) = &a.hand_model {
        let hand_size = LANDMARK_INPUT as usize;
        out.push(("hand-landmarks", BackboneSpec::hand(h), hand_size));
        if let Some(d) = &a.dinov2 {
            let both = BackboneSpec {
                hf_dir: Some(d.clone()),
                ..BackboneSpec::hand(h)
            };
            out.push(("dinov2+hand-landmarks", both, hand_size));
        }
    }
    anyhow::ensure!(
        !out.is_empty(),
        "nothing to run: give --dinov2, --resnet and/or --hand-model"
    );
    Ok(out)
}

fn row(backbone: &str, loss: &str, results: &ProtocolResults, report: &FitReport) -> String {
    let t = &results.template_to_template;
    let r = |k| t.recall_at(k).map_or(f64::NAN, |x| x.value);
    let image_r1 = results
        .image_to_template
        .recall_at(1)
        .map_or(f64::NAN, |x| x.value);
    format!(
        "| {backbone} | {loss} | {:.3} | {:.3} | {:.3} | {:.2} | {image_r1:.3} | {:.1} | {:.1} |\n",
        r(1),
        r(5),
        r(10),
        t.mean_rank,
        report.extract_seconds,
        report.fit_seconds
    )
}

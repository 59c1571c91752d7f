//! `handmatch-train extract`: cache backbone features of the training and validation
//! subjects (the evaluation view and V augmented views per image).

use std::path::PathBuf;

use clap::Args;
use handmatch_core::dataset::split::Subset;
use handmatch_trainer::extract::{extract, ExtractOptions};
use handmatch_trainer::pipeline::{export_backbone, images_of};

use super::{BackboneArgs, DataSplitArgs, RuntimeArgs};

#[derive(Args)]
pub struct ExtractArgs {
    #[command(flatten)]
    pub backbone: BackboneArgs,
    #[command(flatten)]
    pub data: DataSplitArgs,
    /// Augmented views per image.
    #[arg(long, default_value_t = 8)]
    pub views: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The feature cache (safetensors).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

pub fn run(a: ExtractArgs) -> anyhow::Result<()> {
    let (ds, split) = a.data.load()?;
    let backbone = a.out.with_extension("backbone.onnx");
    export_backbone(&a.backbone.spec()?, a.backbone.image_size, &backbone)?;
    let subjects = split
        .subject_set(Subset::Train)
        .union(&split.subject_set(Subset::Val))
        .cloned()
        .collect();
    let images = images_of(&ds, &subjects);
    let started = std::time::Instant::now();
    let cache = extract(
        &images,
        &a.out,
        &ExtractOptions {
            backbone,
            views: a.views,
            seed: a.seed,
            batch_size: a.runtime.batch_size,
            runtime: a.runtime.options(),
            progress: true,
        },
    )?;
    println!(
        "{}: {} images x (1 + {} views), {}-d features, {:.1} s",
        a.out.display(),
        cache.images.len(),
        a.views,
        cache.eval.ncols(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

//! `handmatch-train export-backbone`: a checkpoint's backbone alone, pixel_values [N,3,S,S] → features [N,D].

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use handmatch_export::artefact::backbone_model;

use super::BackboneArgs;

#[derive(Args)]
pub struct ExportBackboneArgs {
    #[command(flatten)]
    pub backbone: BackboneArgs,
    /// Square input side S (a multiple of the patch size for DINOv2).
    #[arg(long, env = "HANDMATCH_IMAGE_SIZE", default_value_t = 224)]
    pub image_size: usize,
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: ExportBackboneArgs) -> anyhow::Result<()> {
    let open = a.backbone.spec()?.open()?;
    let model = backbone_model(open.as_ref(), a.image_size)?;
    let id = model.model_id();
    model
        .save(&a.out)
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!("wrote {} (model_id {id})", a.out.display());
    Ok(())
}

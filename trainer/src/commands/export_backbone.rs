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
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: ExportBackboneArgs) -> anyhow::Result<()> {
    let open = a.backbone.spec()?.open()?;
    let model = backbone_model(open.as_ref(), a.backbone.image_size)?;
    let id = model.model_id();
    model
        .save(&a.out)
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!("wrote {} (model_id {id})", a.out.display());
    Ok(())
}

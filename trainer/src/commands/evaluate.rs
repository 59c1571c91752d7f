//! `handmatch-train evaluate`: every protocol on one subset, through the artefact.

use std::path::PathBuf;

use clap::Args;
use handmatch_core::dataset::split::Subset;
use handmatch_trainer::evaluate::{embed_images, score, table, write_report};
use handmatch_trainer::pipeline::images_of;

use super::{DataSplitArgs, RuntimeArgs};

#[derive(Args)]
pub struct EvaluateArgs {
    #[arg(long, env = "HANDMATCH_MODEL")]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataSplitArgs,
    #[arg(long, value_enum, default_value_t = Subset::Test)]
    pub subset: Subset,
    /// results.json and cmc.png go here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

pub fn run(a: EvaluateArgs) -> anyhow::Result<()> {
    let (ds, split) = a.data.load()?;
    split.check_against(&ds, a.subset)?;
    let images = images_of(&ds, &split.subject_set(a.subset));
    let embedded = embed_images(
        &a.model,
        &images,
        &a.runtime.options(),
        a.runtime.batch_size,
        true,
    )?;
    if !embedded.no_hand.is_empty() {
        println!(
            "no hand found in {} of {} images (left out): {}",
            embedded.no_hand.len(),
            images.len(),
            embedded
                .no_hand
                .iter()
                .map(|i| i.image_name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let results = score(&embedded.images, &embedded.embeddings)?;
    print!("{}", table(&results));
    if let Some(out) = &a.out {
        write_report(&results, out, &format!("CMC, {:?} subjects", a.subset))?;
        println!("wrote {}/results.json and cmc.png", out.display());
    }
    Ok(())
}

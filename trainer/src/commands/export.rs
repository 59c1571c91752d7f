//! `handmatch-train export`: the service's artefact, uint8 image [N,S,S,3] → L2-normalised embedding [N,E].

use std::path::PathBuf;

use clap::Args;
use handmatch_export::artefact::{artefact_model, HeadSource};
use handmatch_export::backbone::BackboneSpec;
use handmatch_export::head::{Head, DEFAULT_HIDDEN};
use handmatch_export::onnx::ModelFile;
use handmatch_trainer::artefact_writer::{hand_fp32_reference, write_artefact, PrecisionArgs};

use super::BackboneArgs;

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub backbone: BackboneArgs,
    /// A trained head (safetensors written by `fit`).
    #[arg(
        long,
        conflicts_with = "random_head",
        required_unless_present = "random_head"
    )]
    pub head: Option<PathBuf>,
    /// Use a random head instead (tests, benchmarks, the demo before training).
    #[arg(long)]
    pub random_head: bool,
    /// Embedding size E of the random head.
    #[arg(long, default_value_t = 256)]
    pub embedding_dim: usize,
    /// Hidden width of the random head.
    #[arg(long, default_value_t = DEFAULT_HIDDEN)]
    pub head_hidden: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub precision: PrecisionArgs,
    /// Where the quality gate runs (with --precision).
    #[command(flatten)]
    pub runtime: handmatch_core::args::RuntimeArgs,
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: ExportArgs) -> anyhow::Result<()> {
    let spec = a.backbone.spec()?;
    let build = |spec: &BackboneSpec| -> anyhow::Result<_> {
        let head = match &a.head {
            Some(path) => HeadSource::Trained(Box::new(Head::load(path)?)),
            None => HeadSource::Random {
                hidden: a.head_hidden,
                embedding_dim: a.embedding_dim,
                seed: a.seed,
            },
        };
        Ok(artefact_model(
            spec.open()?.as_ref(),
            a.backbone.image_size,
            head,
            None,
        )?)
    };
    let reference = hand_fp32_reference(&spec, &a.precision, |s| Ok(build(s)?.0))?;
    let (model, meta): (ModelFile, _) = build(&spec)?;
    let meta = write_artefact(
        model,
        meta,
        reference,
        &a.out,
        &a.precision,
        &a.runtime.options(),
    )?;
    println!(
        "wrote {} (model_id {}, {}, {}, {}px → {}-d)",
        a.out.display(),
        meta.model_id,
        meta.precision.as_str(),
        meta.backbone,
        meta.input_size,
        meta.embedding_dim
    );
    Ok(())
}

//! `handmatch-train`: builds model artefacts (and, in later stages, trains and evaluates).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args as ClapArgs, Parser, Subcommand};

use handmatch_trainer::artefact::{artefact_model, backbone_model, HeadSource};
use handmatch_trainer::checkpoint::Checkpoint;
use handmatch_trainer::head::{ProjectionHead, DEFAULT_HIDDEN};
use handmatch_trainer::random_init::{self, Arch};

#[derive(Parser)]
#[command(
    name = "handmatch-train",
    version,
    about = "Build, train and evaluate handmatch model artefacts"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Export a Hugging Face backbone checkpoint to ONNX: pixel_values [N,3,S,S] → features [N,D].
    ExportBackbone(ExportBackboneArgs),
    /// Export the service's artefact: uint8 image [N,S,S,3] → L2-normalised embedding [N,E].
    Export(ExportArgs),
    /// Write a random-initialised checkpoint of a real architecture (Hugging Face layout).
    InitRandom(InitRandomArgs),
}

#[derive(ClapArgs)]
struct ExportBackboneArgs {
    /// Checkpoint folder with config.json and model.safetensors.
    #[arg(long, env = "HANDMATCH_HF_DIR")]
    hf_dir: PathBuf,
    /// Square input side S (a multiple of the patch size for DINOv2).
    #[arg(long, env = "HANDMATCH_IMAGE_SIZE", default_value_t = 224)]
    image_size: usize,
    #[arg(long)]
    out: PathBuf,
}

#[derive(ClapArgs)]
struct ExportArgs {
    #[arg(long, env = "HANDMATCH_HF_DIR")]
    hf_dir: PathBuf,
    #[arg(long, env = "HANDMATCH_IMAGE_SIZE", default_value_t = 224)]
    image_size: usize,
    /// A trained head (safetensors written by `fit`).
    #[arg(
        long,
        conflicts_with = "random_head",
        required_unless_present = "random_head"
    )]
    head: Option<PathBuf>,
    /// Use a random head instead (tests, benchmarks, the demo before training).
    #[arg(long)]
    random_head: bool,
    /// Embedding size E of the random head.
    #[arg(long, default_value_t = 256)]
    embedding_dim: usize,
    /// Hidden width of the random head.
    #[arg(long, default_value_t = DEFAULT_HIDDEN)]
    head_hidden: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    out: PathBuf,
}

#[derive(ClapArgs)]
struct InitRandomArgs {
    #[arg(long, value_enum)]
    arch: Arch,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Args::parse().command {
        Command::ExportBackbone(a) => {
            let ckpt = Checkpoint::open(&a.hf_dir)?;
            let model = backbone_model(&ckpt, a.image_size)?;
            let id = model.model_id();
            model
                .save(&a.out)
                .with_context(|| format!("writing {}", a.out.display()))?;
            println!("wrote {} (model_id {id})", a.out.display());
        }
        Command::Export(a) => {
            let ckpt = Checkpoint::open(&a.hf_dir)?;
            let head = match &a.head {
                Some(path) => HeadSource::Trained(Box::new(ProjectionHead::load(path)?)),
                None => HeadSource::Random {
                    hidden: a.head_hidden,
                    embedding_dim: a.embedding_dim,
                    seed: a.seed,
                },
            };
            let (model, meta) = artefact_model(&ckpt, a.image_size, head, serde_json::json!({}))?;
            model
                .save(&a.out)
                .with_context(|| format!("writing {}", a.out.display()))?;
            println!(
                "wrote {} (model_id {}, {}, {}px → {}-d)",
                a.out.display(),
                meta.model_id,
                meta.backbone,
                meta.input_size,
                meta.embedding_dim
            );
        }
        Command::InitRandom(a) => {
            random_init::write(a.arch, a.seed, &a.out)?;
            println!(
                "wrote a random {:?} checkpoint to {}",
                a.arch,
                a.out.display()
            );
        }
    }
    Ok(())
}

//! `handmatch-train`: builds model artefacts (and, in later stages, trains and evaluates).

mod commands;

use commands::DataArgs;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args as ClapArgs, Parser, Subcommand};

use handmatch::dataset::hand_info::Filter;
use handmatch::dataset::split::{Fractions, SubjectSplit};
use handmatch::dataset::{Aspect, Side};
use handmatch_trainer::artefact::{artefact_model, backbone_model, HeadSource};
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
    /// Write a synthetic hand dataset in the 11k Hands layout (HandInfo.csv + Hands/*.jpg).
    Synth(SynthArgs),
    /// Load a dataset folder (HandInfo.csv + Hands/) and report what it holds.
    Dataset(DatasetArgs),
    /// Write a subject-level train/validation/test split file (JSON).
    Split(SplitArgs),
    /// Cache backbone features (evaluation view + augmented views) of a dataset.
    Extract(commands::extract::ExtractArgs),
    /// Train the projection head on cached features and export the artefact.
    Fit(commands::fit::FitArgs),
    /// Evaluate an artefact on a subset under every protocol.
    Evaluate(commands::evaluate::EvaluateArgs),
    /// {ResNet, DINOv2} x {contrastive, triplet}: a results table and a comparison plot.
    Matrix(commands::matrix::MatrixArgs),
    /// Fetch MediaPipe's hand landmark model from PyPI and convert it to ONNX (runs
    /// scripts/hand-landmarks/import.sh, which uses a throw-away Python environment).
    ImportHandLandmarks,
    /// Draw hands before and after alignment, with their landmarks, into one PNG.
    AlignSheet(commands::align_sheet::AlignSheetArgs),
}

#[derive(ClapArgs)]
struct DatasetArgs {
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, value_enum)]
    aspect: Option<Aspect>,
    #[arg(long, value_enum)]
    side: Option<Side>,
    #[arg(long)]
    exclude_accessories: bool,
    #[arg(long)]
    exclude_irregular: bool,
}

#[derive(ClapArgs)]
struct SplitArgs {
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 0.68)]
    train: f64,
    #[arg(long, default_value_t = 0.11)]
    val: f64,
    #[arg(long, default_value_t = 0.21)]
    test: f64,
    #[arg(long)]
    out: PathBuf,
}

#[derive(ClapArgs)]
struct ExportBackboneArgs {
    #[command(flatten)]
    backbone: commands::BackboneArgs,
    /// Square input side S (a multiple of the patch size for DINOv2).
    #[arg(long, env = "HANDMATCH_IMAGE_SIZE", default_value_t = 224)]
    image_size: usize,
    #[arg(long)]
    out: PathBuf,
}

#[derive(ClapArgs)]
struct ExportArgs {
    #[command(flatten)]
    backbone: commands::BackboneArgs,
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

#[derive(ClapArgs)]
struct SynthArgs {
    #[arg(long)]
    subjects: usize,
    #[arg(long)]
    seed: u64,
    #[arg(long)]
    out: PathBuf,
    /// Image width in pixels [default: 320].
    #[arg(long)]
    width: Option<u32>,
    /// Image height in pixels [default: 240].
    #[arg(long)]
    height: Option<u32>,
    /// Fewest images of each aspect and side per subject [default: 2].
    #[arg(long)]
    per_view_min: Option<usize>,
    /// Most images of each aspect and side per subject [default: 5].
    #[arg(long)]
    per_view_max: Option<usize>,
    /// Also write a PNG contact sheet of the first subject's images.
    #[arg(long)]
    contact_sheet: Option<PathBuf>,
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
            let open = a.backbone.spec()?.open()?;
            let model = backbone_model(open.as_ref(), a.image_size)?;
            let id = model.model_id();
            model
                .save(&a.out)
                .with_context(|| format!("writing {}", a.out.display()))?;
            println!("wrote {} (model_id {id})", a.out.display());
        }
        Command::Export(a) => {
            let open = a.backbone.spec()?.open()?;
            let head = match &a.head {
                Some(path) => HeadSource::Trained(Box::new(ProjectionHead::load(path)?)),
                None => HeadSource::Random {
                    hidden: a.head_hidden,
                    embedding_dim: a.embedding_dim,
                    seed: a.seed,
                },
            };
            let (model, meta) =
                artefact_model(open.as_ref(), a.image_size, head, serde_json::json!({}))?;
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
        Command::ImportHandLandmarks => {
            let script = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../scripts/hand-landmarks/import.sh"
            );
            let status = std::process::Command::new("bash")
                .arg(script)
                .status()
                .with_context(|| format!("running {script}"))?;
            anyhow::ensure!(status.success(), "{script} failed ({status})");
        }
        Command::AlignSheet(a) => commands::align_sheet::run(a)?,
        Command::InitRandom(a) => {
            random_init::write(a.arch, a.seed, &a.out)?;
            println!(
                "wrote a random {:?} checkpoint to {}",
                a.arch,
                a.out.display()
            );
        }
        Command::Synth(a) => {
            use handmatch::dataset::synth;
            let defaults = synth::SynthOptions::default();
            let opts = synth::SynthOptions {
                subjects: a.subjects,
                seed: a.seed,
                width: a.width.unwrap_or(defaults.width),
                height: a.height.unwrap_or(defaults.height),
                per_view_min: a.per_view_min.unwrap_or(defaults.per_view_min),
                per_view_max: a.per_view_max.unwrap_or(defaults.per_view_max),
            };
            let summary = synth::generate(&opts, &a.out)?;
            println!(
                "wrote {} images of {} synthetic subjects ({}x{}) to {}",
                summary.images,
                summary.subjects,
                opts.width,
                opts.height,
                a.out.display()
            );
            if let Some(png) = &a.contact_sheet {
                let first = format!("{:07}", synth::FIRST_SUBJECT_ID);
                synth::contact_sheet(&a.out, &first, png)?;
                println!(
                    "wrote a contact sheet of subject {first} to {}",
                    png.display()
                );
            }
        }
        Command::Dataset(a) => {
            let (ds, report) = a.data.load()?;
            let filter = Filter {
                aspect: a.aspect,
                side: a.side,
                exclude_accessories: a.exclude_accessories,
                exclude_irregular: a.exclude_irregular,
            };
            let ds = ds.filtered(&filter);
            let subjects = ds.subjects();
            let both = subjects
                .values()
                .filter(|v| v.dorsal > 0 && v.palmar > 0)
                .count();
            println!(
                "{}: {} rows, {} loaded, {} after filters",
                a.data.data.display(),
                report.rows,
                report.loaded,
                ds.images.len()
            );
            println!(
                "subjects: {} ({} with both dorsal and palmar images)",
                subjects.len(),
                both
            );
            for aspect in [Aspect::Dorsal, Aspect::Palmar] {
                for side in [Side::Left, Side::Right] {
                    let n = ds
                        .images
                        .iter()
                        .filter(|i| i.aspect == aspect && i.side == side)
                        .count();
                    println!("  {} {}: {n}", aspect.as_str(), side.as_str());
                }
            }
            let count = |f: fn(&handmatch::dataset::HandImage) -> bool| {
                ds.images.iter().filter(|i| f(i)).count()
            };
            println!(
                "accessories: {}, nail polish: {}, irregular: {}",
                count(|i| i.accessories),
                count(|i| i.nail_polish),
                count(|i| i.irregular)
            );
        }
        Command::Split(a) => {
            let (ds, _) = a.data.load()?;
            let fractions = Fractions {
                train: a.train,
                val: a.val,
                test: a.test,
            };
            let split = SubjectSplit::new(&ds, fractions, a.seed)?;
            split.save(&a.out)?;
            println!(
                "wrote {}: {} train, {} validation, {} test subjects; {} dropped",
                a.out.display(),
                split.train.len(),
                split.val.len(),
                split.test.len(),
                split.dropped.len()
            );
            for d in &split.dropped {
                println!("  dropped {}: {}", d.subject, d.reason);
            }
        }
        Command::Extract(a) => commands::extract::run(a)?,
        Command::Fit(a) => commands::fit::run(a)?,
        Command::Evaluate(a) => commands::evaluate::run(a)?,
        Command::Matrix(a) => commands::matrix::run(a)?,
    }
    Ok(())
}

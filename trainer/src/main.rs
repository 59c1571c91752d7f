//! `handmatch-train`: exports artefacts, makes and splits datasets, extracts features,
//! trains heads and evaluates them. Each subcommand lives in `commands/`.

mod commands;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    ExportBackbone(commands::export_backbone::ExportBackboneArgs),
    /// Export the service's artefact: uint8 image [N,S,S,3] → L2-normalised embedding [N,E].
    Export(commands::export::ExportArgs),
    /// Write a random-initialised checkpoint of a real architecture (Hugging Face layout).
    InitRandom(commands::init_random::InitRandomArgs),
    /// Write a synthetic hand dataset in the 11k Hands layout (HandInfo.csv + Hands/*.jpg).
    Synth(commands::synth::SynthArgs),
    /// Load a dataset folder (HandInfo.csv + Hands/) and report what it holds.
    Dataset(commands::dataset::DatasetArgs),
    /// Write a subject-level train/validation/test split file (JSON).
    Split(commands::split::SplitArgs),
    /// Cache backbone features (evaluation view + augmented views) of a dataset.
    Extract(commands::extract::ExtractArgs),
    /// Train the projection head on cached features and export the artefact.
    Fit(commands::fit::FitArgs),
    /// Evaluate an artefact on a subset under every protocol.
    Evaluate(commands::evaluate::EvaluateArgs),
    /// Repeated K-fold cross-validation over all subjects of a folder, one or more head
    /// configurations on the same folds.
    Cv(commands::cv::CvArgs),
    /// {ResNet, DINOv2} x {contrastive, triplet}: a results table and a comparison plot.
    Matrix(commands::matrix::MatrixArgs),
    /// Fetch MediaPipe's hand landmark model from PyPI and convert it to ONNX (runs
    /// scripts/hand-landmarks/import.sh, which uses a throw-away Python environment).
    ImportHandLandmarks,
    /// Draw hands before and after alignment, with their landmarks, into one PNG.
    AlignSheet(commands::align_sheet::AlignSheetArgs),
    /// Write the hand landmark network in static int8, calibrated on aligned crops of a
    /// dataset's hands, for `--hand-embedding-model`.
    QuantizeHand(commands::quantize_hand::QuantizeHandArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let argv = handmatch_trainer::recipe::expand(std::env::args_os().collect())?;
    match parse(argv).command {
        Command::ExportBackbone(a) => commands::export_backbone::run(a),
        Command::Export(a) => commands::export::run(a),
        Command::InitRandom(a) => commands::init_random::run(a),
        Command::Synth(a) => commands::synth::run(a),
        Command::Dataset(a) => commands::dataset::run(a),
        Command::Split(a) => commands::split::run(a),
        Command::Extract(a) => commands::extract::run(a),
        Command::Fit(a) => commands::fit::run(a),
        Command::Evaluate(a) => commands::evaluate::run(a),
        Command::Matrix(a) => commands::matrix::run(a),
        Command::Cv(a) => commands::cv::run(a),
        Command::ImportHandLandmarks => commands::import_hand_landmarks::run(),
        Command::AlignSheet(a) => commands::align_sheet::run(a),
        Command::QuantizeHand(a) => commands::quantize_hand::run(a),
    }
}

/// Parses the command line after `recipe::expand` put a recipe's flags in front of the given
/// ones: a flag given twice keeps its last value, so the command line overrides the recipe.
fn parse(argv: Vec<std::ffi::OsString>) -> Args {
    let command = Args::command().mut_subcommands(|s| s.args_override_self(true));
    let matches = command.get_matches_from(argv);
    Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subcommand_is_a_valid_clap_command() {
        Args::command()
            .mut_subcommands(|s| s.args_override_self(true))
            .debug_assert();
    }

    #[test]
    fn flags_after_the_recipe_override_it() {
        let dir = tempfile::tempdir().unwrap();
        let recipe = dir.path().join("r.toml");
        std::fs::write(
            &recipe,
            "epochs = 10\nensemble = \"all;all\"\nhead = \"lda\"\n",
        )
        .unwrap();
        let argv: Vec<std::ffi::OsString> = ["handmatch-train", "fit", "--recipe"]
            .into_iter()
            .map(Into::into)
            .chain([recipe.into_os_string()])
            .chain(
                [
                    "--data",
                    "d",
                    "--split",
                    "s",
                    "--out",
                    "o",
                    "--epochs",
                    "3",
                    "--ensemble",
                    "none",
                ]
                .map(Into::into),
            )
            .collect();
        let Command::Fit(a) = parse(handmatch_trainer::recipe::expand(argv).unwrap()).command
        else {
            panic!("not fit");
        };
        let cfg = a.training.config();
        assert_eq!(cfg.epochs, 3);
        assert_eq!(cfg.ensemble, None);
        assert_eq!(cfg.head, handmatch_trainer::training::HeadKind::Lda);
    }
}

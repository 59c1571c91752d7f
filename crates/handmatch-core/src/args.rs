//! Command-line arguments that several binaries take, each defined once and flattened
//! into each binary's `Args` (`#[command(flatten)]`).

use std::path::PathBuf;

use crate::dataset::hand_info::{Dataset, LoadOptions, LoadReport, OnProblem, ProblemKind};
use crate::embed::runtime::{Device, RuntimeOptions};

/// Where ONNX Runtime comes from and where the model runs.
#[derive(clap::Args, Debug, Clone)]
pub struct RuntimeArgs {
    /// ONNX Runtime's shared library (default: .ort/lib/libonnxruntime.so from scripts/setup.sh).
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub ort_lib: Option<PathBuf>,
    /// Where the model runs: auto (CUDA when available, else CPU), cpu or cuda.
    #[arg(long, env = "HANDMATCH_DEVICE", value_enum, default_value_t = Device::Auto)]
    pub device: Device,
    /// ONNX Runtime threads inside one graph run (0: one per core).
    #[arg(long, env = "HANDMATCH_INTRA_THREADS", default_value_t = 0)]
    pub intra_threads: usize,
}

impl RuntimeArgs {
    pub fn options(&self) -> RuntimeOptions {
        RuntimeOptions {
            library: self.ort_lib.clone(),
            device: self.device,
            intra_threads: self.intra_threads,
        }
    }
}

/// A dataset folder in the 11k Hands layout.
#[derive(clap::Args, Debug, Clone)]
pub struct DatasetArgs {
    /// A folder in the 11k Hands layout: HandInfo.csv and Hands/*.jpg.
    #[arg(long, env = "HANDMATCH_DATA")]
    pub data: PathBuf,
    /// Leave out (and count) rows with problems instead of failing on the first.
    #[arg(long, env = "HANDMATCH_SKIP_PROBLEMS")]
    pub skip_problems: bool,
}

impl DatasetArgs {
    /// Loads the dataset; skipped rows are summed up on stderr, the first five with their
    /// line numbers.
    pub fn load(&self) -> Result<(Dataset, LoadReport), crate::dataset::hand_info::DatasetError> {
        let on_problem = if self.skip_problems {
            OnProblem::Skip
        } else {
            OnProblem::Error
        };
        let (ds, report) = Dataset::load(&self.data, &LoadOptions { on_problem })?;
        if !report.problems.is_empty() {
            eprintln!(
                "skipped {} of {} rows: {} missing files, {} unknown aspects, {} malformed",
                report.problems.len(),
                report.rows,
                report.count(ProblemKind::MissingFile),
                report.count(ProblemKind::UnknownAspect),
                report.count(ProblemKind::Malformed)
            );
            for p in report.problems.iter().take(5) {
                eprintln!("  line {}: {}", p.line, p.message);
            }
        }
        Ok((ds, report))
    }
}

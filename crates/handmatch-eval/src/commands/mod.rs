//! The subcommands of `handmatch-eval`, one module each, and the arguments they share.

pub mod enroll;
pub mod identify;
pub mod info;
pub mod load;
pub mod run;

use clap::Args;
use handmatch_core::args::DatasetArgs;
use handmatch_core::dataset::hand_info::Dataset;
use handmatch_core::dataset::split::{SubjectSplit, Subset};
use handmatch_eval::client::{connect, Client};

/// The server to talk to.
#[derive(Args, Clone)]
pub struct ServerArgs {
    /// The server's address, e.g. http://127.0.0.1:50051.
    #[arg(
        long,
        env = "HANDMATCH_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
}

impl ServerArgs {
    pub async fn connect(&self) -> anyhow::Result<Client> {
        connect(&self.server).await
    }
}

/// A dataset, optionally narrowed to one subset of a split.
#[derive(Args, Clone)]
pub struct DataArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// Use only the subjects of one subset of this split file.
    #[arg(long, env = "HANDMATCH_SPLIT")]
    pub split: Option<std::path::PathBuf>,
    #[arg(long, env = "HANDMATCH_SUBSET", value_enum, requires = "split")]
    pub subset: Option<Subset>,
}

impl DataArgs {
    pub fn load(&self) -> anyhow::Result<Dataset> {
        let (mut ds, _) = self.dataset.load()?;
        if let Some(path) = &self.split {
            let split = SubjectSplit::load(path)?;
            let subset = self.subset.unwrap_or(Subset::Test);
            split.check_against(&ds, subset)?;
            let keep = split.subject_set(subset);
            ds.images.retain(|i| keep.contains(&i.subject));
        }
        Ok(ds)
    }
}

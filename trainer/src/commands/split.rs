//! `handmatch-train split`: a subject-level train/validation/test split file.

use std::path::PathBuf;

use clap::Args;
use handmatch_core::dataset::split::{Fractions, SubjectSplit};

use super::DataArgs;

#[derive(Args)]
pub struct SplitArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 0.68)]
    pub train: f64,
    #[arg(long, default_value_t = 0.11)]
    pub val: f64,
    #[arg(long, default_value_t = 0.21)]
    pub test: f64,
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: SplitArgs) -> anyhow::Result<()> {
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
    Ok(())
}

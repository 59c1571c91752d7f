//! `handmatch-train init-random`: a random-initialised checkpoint of a real architecture (Hugging Face layout).

use std::path::PathBuf;

use clap::Args;
use handmatch_export::random_init::{self, Arch};

#[derive(Args)]
pub struct InitRandomArgs {
    #[arg(long, value_enum)]
    pub arch: Arch,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: InitRandomArgs) -> anyhow::Result<()> {
    random_init::write(a.arch, a.seed, &a.out)?;
    println!(
        "wrote a random {:?} checkpoint to {}",
        a.arch,
        a.out.display()
    );
    Ok(())
}

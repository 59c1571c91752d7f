//! `handmatch-train synth`: a synthetic hand dataset in the 11k Hands layout.

use std::path::PathBuf;

use clap::Args;
use handmatch_core::dataset::synth;

#[derive(Args)]
pub struct SynthArgs {
    #[arg(long)]
    pub subjects: usize,
    #[arg(long)]
    pub seed: u64,
    #[arg(long)]
    pub out: PathBuf,
    /// Image width in pixels [default: 320].
    #[arg(long)]
    pub width: Option<u32>,
    /// Image height in pixels [default: 240].
    #[arg(long)]
    pub height: Option<u32>,
    /// Fewest images of each aspect and side per subject [default: 2].
    #[arg(long)]
    pub per_view_min: Option<usize>,
    /// Most images of each aspect and side per subject [default: 5].
    #[arg(long)]
    pub per_view_max: Option<usize>,
    /// Also write a PNG contact sheet of the first subject's images.
    #[arg(long)]
    pub contact_sheet: Option<PathBuf>,
}

pub fn run(a: SynthArgs) -> anyhow::Result<()> {
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
    Ok(())
}

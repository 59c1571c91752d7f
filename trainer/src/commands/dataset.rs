//! `handmatch-train dataset`: what a dataset folder holds.

use clap::Args;
use handmatch_core::dataset::hand_info::Filter;
use handmatch_core::hand_image::{Aspect, HandImage, Side};

use super::DataArgs;

#[derive(Args)]
#[group(id = "dataset-command")]
pub struct DatasetArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, value_enum)]
    pub aspect: Option<Aspect>,
    #[arg(long, value_enum)]
    pub side: Option<Side>,
    #[arg(long)]
    pub exclude_accessories: bool,
    #[arg(long)]
    pub exclude_irregular: bool,
}

pub fn run(a: DatasetArgs) -> anyhow::Result<()> {
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
    let count = |f: fn(&HandImage) -> bool| ds.images.iter().filter(|i| f(i)).count();
    println!(
        "accessories: {}, nail polish: {}, irregular: {}",
        count(|i| i.accessories),
        count(|i| i.nail_polish),
        count(|i| i.irregular)
    );
    Ok(())
}

//! Writes the aligned 224-pixel crops that a hand artefact's network sees (the imported hand
//! landmark network's own alignment, as `fit --fine-tune` caches them) as PNG files named
//! after their photos, for probes outside Rust: `scripts/hand-int8-ptq.py CROPS_DIR`
//! measures int8 against fp32 on them rather than on whole photos squeezed to 224 x 224.
//! Photos in which no hand is found are left out.
//!
//! Usage: cargo run --release -p handmatch-trainer --example write_aligned_crops -- \
//!     DATASET_DIR OUT_DIR

use std::path::{Path, PathBuf};

use handmatch_core::dataset::hand_info::{Dataset, LoadOptions};
use handmatch_core::embed::RuntimeOptions;
use handmatch_export::backbone::{hand::DEFAULT_MODEL, BackboneSpec};
use handmatch_trainer::finetune::AlignedCrops;
use handmatch_trainer::pipeline::export_backbone;

fn main() -> anyhow::Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [data, out] = args.as_slice() else {
        anyhow::bail!("usage: write_aligned_crops DATASET_DIR OUT_DIR");
    };
    let dataset = Dataset::load(data, &LoadOptions::default())?.0;
    let images: Vec<_> = dataset.images.iter().collect();
    let work = tempfile::tempdir()?;
    let aligner = work.path().join("hand-backbone.onnx");
    export_backbone(&BackboneSpec::hand(DEFAULT_MODEL), 224, &aligner)?;
    let crops = AlignedCrops::build(
        &images,
        &aligner,
        &work.path().join("crops"),
        &RuntimeOptions::default(),
        true,
    )?;
    std::fs::create_dir_all(out)?;
    for (i, image) in crops.images.iter().enumerate() {
        let stem = Path::new(&image.image_name).with_extension("png");
        crops.crop(i).save(out.join(stem))?;
    }
    println!(
        "{} of {} photos aligned into {}",
        crops.len(),
        images.len(),
        out.display()
    );
    Ok(())
}

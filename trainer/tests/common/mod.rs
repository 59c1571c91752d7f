//! What several trainer test files share.

#![allow(dead_code)] // each test binary uses its own part of it

pub mod directional;
pub mod parity;

use std::path::{Path, PathBuf};

use handmatch_core::dataset::hand_info::{Dataset, LoadOptions};
use handmatch_core::dataset::synth::{generate, SynthOptions};
use handmatch_trainer::finetune::{fine_tune, FineTuneJob, FineTuneOutcome};

/// The real MediaPipe hand landmark model that scripts/setup.sh imports.
pub fn hand_model() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(handmatch_export::backbone::hand::DEFAULT_MODEL);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh",
        path.display()
    );
    path
}

/// `subjects` synthetic 240 × 180 subjects with `per_view` photos of each view, written to
/// `dir/hands` and loaded.
pub fn synthetic_hands(dir: &Path, subjects: usize, seed: u64, per_view: usize) -> Dataset {
    let root = dir.join("hands");
    generate(
        &SynthOptions {
            subjects,
            seed,
            width: 240,
            height: 180,
            per_view_min: per_view,
            per_view_max: per_view,
        },
        &root,
    )
    .unwrap();
    Dataset::load(&root, &LoadOptions::default()).unwrap().0
}

/// `template` run uninterrupted into `template.out/whole`, and into `template.out/resumed`
/// stopped after its first epoch, then resumed.
pub fn run_whole_and_resumed(template: &FineTuneJob) -> (FineTuneOutcome, FineTuneOutcome) {
    let job = |name: &str, resume: bool, stop_after: Option<usize>| FineTuneJob {
        out: template.out.join(name),
        resume,
        stop_after,
        config: template.config.clone(),
        ..*template
    };
    let whole = fine_tune(&job("whole", false, None)).unwrap();
    fine_tune(&job("resumed", false, Some(1))).unwrap();
    let resumed = fine_tune(&job("resumed", true, None)).unwrap();
    (whole, resumed)
}

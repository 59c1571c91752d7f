//! Synthetic hands in the 11k Hands layout (`HandInfo.csv` + `Hands/Hand_XXXXXXX.jpg`), for tests
//! and demos that cannot ship the real dataset.
//!
//! Every subject has fixed identity traits (skin tone, palm and finger proportions, thumb, ring,
//! nail polish) that show in both the dorsal and the palmar view, so a model can learn to match
//! the back of a hand to its palm. Each photo adds its own nuisance (pose, finger spread, light,
//! noise, JPEG quality). The output is a pure function of the options: every random choice comes
//! from a ChaCha8 stream keyed by (seed, subject, view, image), so adding subjects never changes
//! the images of earlier ones.

mod contact_sheet;
mod error;
mod hand_info_csv;
mod hand_model;
mod normal;
mod nuisance;
mod raster;
mod render;
mod traits;

use std::fs;
use std::path::Path;

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::hand_image::VIEWS;
pub use contact_sheet::contact_sheet;
pub use error::SynthError;
use hand_info_csv::HandInfoRow;
use nuisance::ImageNuisance;
use traits::SubjectTraits;

/// First synthetic subject id; real 11k Hands ids are far below it, so the two never collide.
pub const FIRST_SUBJECT_ID: u32 = 9_000_000;

const MIN_SIDE: u32 = 64;
const MAX_SIDE: u32 = 4096;
/// File names and subject ids have seven digits.
const MAX_IMAGES: usize = 10_000_000;
const MAX_SUBJECTS: usize = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthOptions {
    /// Number of synthetic people, with ids from `FIRST_SUBJECT_ID` up.
    pub subjects: usize,
    pub seed: u64,
    /// Image size in pixels, each side 64..=4096; the hand scales with it.
    pub width: u32,
    pub height: u32,
    /// Fewest images of each (aspect, side) per subject.
    pub per_view_min: usize,
    /// Most images of each (aspect, side) per subject.
    pub per_view_max: usize,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            subjects: 20,
            seed: 0,
            width: 320,
            height: 240,
            per_view_min: 2,
            per_view_max: 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthSummary {
    pub subjects: usize,
    pub images: usize,
}

impl SynthOptions {
    fn validate(&self) -> Result<(), SynthError> {
        let invalid = |option, reason: String| Err(SynthError::InvalidOption { option, reason });
        if self.subjects == 0 || self.subjects > MAX_SUBJECTS {
            return invalid(
                "subjects",
                format!("{} is not in 1..={MAX_SUBJECTS}", self.subjects),
            );
        }
        for (option, side) in [("width", self.width), ("height", self.height)] {
            if !(MIN_SIDE..=MAX_SIDE).contains(&side) {
                return invalid(
                    option,
                    format!("{side} pixels is not in {MIN_SIDE}..={MAX_SIDE}"),
                );
            }
        }
        if self.per_view_max == 0 {
            return invalid("per_view_max", "must be at least 1".into());
        }
        if self.per_view_min > self.per_view_max {
            return invalid(
                "per_view_min",
                format!(
                    "{} is greater than per_view_max {}",
                    self.per_view_min, self.per_view_max
                ),
            );
        }
        let most_images = self
            .subjects
            .saturating_mul(VIEWS.len().saturating_mul(self.per_view_max));
        if most_images > MAX_IMAGES {
            return invalid(
                "subjects",
                format!("{most_images} images would not fit seven-digit file names"),
            );
        }
        Ok(())
    }
}

/// What a random stream is for; part of every stream's key so that no two uses share numbers.
#[derive(Clone, Copy)]
enum Stream {
    Traits,
    ImageCounts,
    Image { view: usize, index: usize },
}

/// An independent generator per (seed, subject, purpose): earlier subjects' images never depend
/// on how many subjects or images come after them.
fn stream_rng(seed: u64, subject: usize, stream: Stream) -> ChaCha8Rng {
    let (kind, view, index) = match stream {
        Stream::Traits => (0u64, 0u64, 0u64),
        Stream::ImageCounts => (1, 0, 0),
        Stream::Image { view, index } => (2, view as u64, index as u64),
    };
    let mut key = [0u8; 32];
    key[0..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&(subject as u64).to_le_bytes());
    key[16..24].copy_from_slice(&(kind << 32 | view).to_le_bytes());
    key[24..32].copy_from_slice(&index.to_le_bytes());
    ChaCha8Rng::from_seed(key)
}

/// One synthetic photo at `width` x `height` as JPEG bytes: the first image that
/// `generate` writes for a single subject (seed 0), for benchmarks and tests that need a
/// realistic photo of a given size.
pub fn first_photo(width: u32, height: u32) -> Result<Vec<u8>, SynthError> {
    let tmp = std::env::temp_dir();
    let dir = tempfile::tempdir_in(&tmp).map_err(SynthError::io(&tmp))?;
    let opts = SynthOptions {
        subjects: 1,
        width,
        height,
        per_view_min: 1,
        per_view_max: 1,
        ..Default::default()
    };
    generate(&opts, dir.path())?;
    let path = dir.path().join("Hands").join("Hand_0000000.jpg");
    fs::read(&path).map_err(SynthError::io(&path))
}

/// Writes `out/Hands/Hand_XXXXXXX.jpg` for every image, then `out/HandInfo.csv` (atomically, so
/// a reader never sees a CSV that names missing images).
pub fn generate(opts: &SynthOptions, out: &Path) -> Result<SynthSummary, SynthError> {
    opts.validate()?;
    let hands_dir = out.join("Hands");
    fs::create_dir_all(&hands_dir).map_err(SynthError::io(&hands_dir))?;

    let mut rows = Vec::new();
    for subject in 0..opts.subjects {
        let traits = SubjectTraits::sample(&mut stream_rng(opts.seed, subject, Stream::Traits));
        let mut count_rng = stream_rng(opts.seed, subject, Stream::ImageCounts);
        let subject_id = format!("{:07}", FIRST_SUBJECT_ID as usize + subject);
        for (view, &(aspect, side)) in VIEWS.iter().enumerate() {
            let count = count_rng.random_range(opts.per_view_min..=opts.per_view_max);
            for index in 0..count {
                let mut rng = stream_rng(opts.seed, subject, Stream::Image { view, index });
                let nuisance = ImageNuisance::sample(&mut rng);
                let photo = render::render_hand(
                    &traits,
                    aspect,
                    side,
                    &nuisance,
                    opts.width,
                    opts.height,
                    &mut rng,
                );
                let image_name = format!("Hand_{:07}.jpg", rows.len());
                let path = hands_dir.join(&image_name);
                let jpeg =
                    render::encode_jpeg(&photo, nuisance.jpeg_quality).map_err(|source| {
                        SynthError::Image {
                            path: path.clone(),
                            source,
                        }
                    })?;
                fs::write(&path, jpeg).map_err(SynthError::io(&path))?;
                rows.push(HandInfoRow::new(
                    &subject_id,
                    &traits,
                    aspect,
                    side,
                    image_name,
                ));
            }
        }
    }
    hand_info_csv::write_atomically(&out.join("HandInfo.csv"), &rows)?;
    Ok(SynthSummary {
        subjects: opts.subjects,
        images: rows.len(),
    })
}

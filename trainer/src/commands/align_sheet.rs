//! `handmatch-train align-sheet`: hands before and after alignment, landmarks drawn, in one
//! PNG: what the hand models see, for the docs and for checking a new dataset by eye.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use handmatch_core::embed::backbone_session::BackboneSession;
use handmatch_core::embed::decode::{decode_rgb, DecodeLimits};
use handmatch_core::hand::landmarks::{LANDMARKS, PARENT};
use handmatch_core::hand::{AlignmentSpec, HandAligner, Similarity, LANDMARK_INPUT};
use handmatch_core::hand_image::{Aspect, HandImage};
use handmatch_core::resize::resize;
use handmatch_export::artefact::backbone_model;
use handmatch_export::backbone::BackboneSpec;
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_circle_mut, draw_line_segment_mut};

use super::{DataArgs, RuntimeArgs};

#[derive(Args)]
pub struct AlignSheetArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The imported hand landmark model.
    #[arg(long, env = "HANDMATCH_HAND_MODEL", default_value = handmatch_export::backbone::hand::DEFAULT_MODEL)]
    pub hand_model: PathBuf,
    /// Subjects shown (one dorsal and one palmar image each, from subjects spread over the
    /// dataset).
    #[arg(long, default_value_t = 4)]
    pub subjects: usize,
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

const CELL: u32 = LANDMARK_INPUT;

pub fn run(a: AlignSheetArgs) -> anyhow::Result<()> {
    let (ds, _) = a.data.load()?;
    let picked = pick(&ds.images, a.subjects);
    anyhow::ensure!(!picked.is_empty(), "no subject has both views");
    let dir = tempfile::tempdir()?;
    let backbone = dir.path().join("hand-backbone.onnx");
    let open = BackboneSpec::hand(&a.hand_model).open()?;
    backbone_model(open.as_ref(), LANDMARK_INPUT as usize)?.save(&backbone)?;
    let mut session = BackboneSession::open(&backbone, &a.runtime.options())?;
    let decoded = picked
        .iter()
        .map(|img| {
            let bytes = std::fs::read(&img.path)?;
            decode_rgb(&bytes, &DecodeLimits::default())
                .with_context(|| img.path.display().to_string())
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let aligner = HandAligner::new(AlignmentSpec::default(), LANDMARK_INPUT);
    let aligned = aligner.align(&mut session, &decoded.iter().collect::<Vec<_>>())?;

    // Two images (before, after) per hand; dorsal and palmar of a subject side by side.
    let cols = 4;
    let rows = picked.len().div_ceil(2) as u32;
    let mut sheet = RgbImage::from_pixel(cols * CELL, rows * CELL, Rgb([255, 255, 255]));
    for (i, (img, hand)) in decoded.iter().zip(&aligned).enumerate() {
        let (x0, y0) = ((i as u32 % 2) * 2 * CELL, (i as u32 / 2) * CELL);
        // Before: the photo fitted into the cell.
        let k = CELL as f32 / img.width().max(img.height()) as f32;
        let (w, h) = (
            (img.width() as f32 * k).round() as u32,
            (img.height() as f32 * k).round() as u32,
        );
        let mut before = RgbImage::from_pixel(CELL, CELL, Rgb([255, 255, 255]));
        image::imageops::replace(&mut before, &resize(img, w, h), 0, 0);
        let mut after = RgbImage::from_pixel(CELL, CELL, Rgb([235, 235, 235]));
        match hand {
            Ok(hand) => {
                let fit = Similarity {
                    m: [k, 0.0, 0.0, 0.0, k, 0.0],
                };
                draw_hand(&mut before, &hand.points.map(|p| fit.apply(p)));
                after = hand.crop.clone();
                draw_hand(&mut after, &hand.points.map(|p| hand.transform.apply(p)));
            }
            Err(e) => eprintln!("{}: {e}", picked[i].image_name),
        }
        image::imageops::replace(&mut sheet, &before, x0 as i64, y0 as i64);
        image::imageops::replace(&mut sheet, &after, (x0 + CELL) as i64, y0 as i64);
    }
    sheet.save(&a.out)?;
    let found = aligned.iter().filter(|h| h.is_ok()).count();
    println!(
        "wrote {}: {found} of {} hands aligned",
        a.out.display(),
        picked.len()
    );
    Ok(())
}

/// One dorsal and one palmar image of `subjects` subjects spread over the dataset.
fn pick(images: &[HandImage], subjects: usize) -> Vec<&HandImage> {
    let mut ids: Vec<&str> = images.iter().map(|i| i.subject.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let step = (ids.len() / subjects.max(1)).max(1);
    let mut out = Vec::new();
    for id in ids.iter().step_by(step).take(subjects) {
        let of = |aspect| {
            images
                .iter()
                .find(|i| i.subject == *id && i.aspect == aspect)
        };
        if let (Some(d), Some(p)) = (of(Aspect::Dorsal), of(Aspect::Palmar)) {
            out.extend([d, p]);
        }
    }
    out
}

fn draw_hand(image: &mut RgbImage, points: &[[f32; 2]; LANDMARKS]) {
    for (j, &parent) in PARENT.iter().enumerate().skip(1) {
        let (a, b) = (points[parent], points[j]);
        draw_line_segment_mut(image, (a[0], a[1]), (b[0], b[1]), Rgb([0, 200, 80]));
    }
    for (j, p) in points.iter().enumerate() {
        let colour = if j == 0 {
            Rgb([220, 30, 30])
        } else {
            Rgb([30, 80, 230])
        };
        draw_filled_circle_mut(image, (p[0] as i32, p[1] as i32), 2, colour);
    }
}

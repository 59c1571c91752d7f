//! One subject's photos on a single PNG, to eyeball what the generator draws.

use std::path::Path;

use image::imageops::FilterType;
use image::{Rgb, RgbImage};

use super::error::SynthError;
use crate::hand_image::VIEWS;

const TILE_WIDTH: u32 = 160;
const GAP: u32 = 6;
const MAX_ROWS: usize = 3;
const GAP_COLOUR: Rgb<u8> = Rgb([96, 96, 96]);

/// Writes a grid of `subject`'s images from the 11k Hands layout in `data_dir`: one column per
/// view (dorsal right, dorsal left, palmar right, palmar left), up to three photos per column,
/// each scaled to 160 pixels wide.
pub fn contact_sheet(data_dir: &Path, subject: &str, out_png: &Path) -> Result<(), SynthError> {
    let csv_path = data_dir.join("HandInfo.csv");
    let csv_error = |source| SynthError::Csv {
        path: csv_path.clone(),
        source,
    };
    let mut reader = csv::Reader::from_path(&csv_path).map_err(csv_error)?;
    let mut columns: Vec<Vec<String>> = vec![Vec::new(); VIEWS.len()];
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let (Some(id), Some(aspect), Some(name)) = (record.get(0), record.get(6), record.get(7))
        else {
            continue;
        };
        if id.trim() != subject {
            continue;
        }
        let view = VIEWS
            .iter()
            .position(|(a, s)| format!("{} {}", a.as_str(), s.as_str()) == aspect.trim());
        if let Some(view) = view {
            columns[view].push(name.trim().to_owned());
        }
    }
    let rows = columns
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(0)
        .min(MAX_ROWS);
    if rows == 0 {
        return Err(SynthError::UnknownSubject {
            path: csv_path,
            subject: subject.to_owned(),
        });
    }

    let mut tiles = Vec::new();
    for (column, names) in columns.iter().enumerate() {
        for (row, name) in names.iter().take(MAX_ROWS).enumerate() {
            let path = data_dir.join("Hands").join(name);
            let photo = image::open(&path).map_err(|source| SynthError::Image { path, source })?;
            let tile_height = TILE_WIDTH * photo.height() / photo.width().max(1);
            let tile = photo
                .resize_exact(TILE_WIDTH, tile_height.max(1), FilterType::Triangle)
                .into_rgb8();
            tiles.push((column as u32, row as u32, tile));
        }
    }
    let tile_height = tiles.iter().map(|(_, _, t)| t.height()).max().unwrap_or(1);
    let columns = VIEWS.len() as u32;
    let mut sheet = RgbImage::from_pixel(
        GAP + columns * (TILE_WIDTH + GAP),
        GAP + rows as u32 * (tile_height + GAP),
        GAP_COLOUR,
    );
    for (column, row, tile) in &tiles {
        let x = GAP + column * (TILE_WIDTH + GAP);
        let y = GAP + row * (tile_height + GAP);
        image::imageops::replace(&mut sheet, tile, i64::from(x), i64::from(y));
    }
    sheet.save(out_png).map_err(|source| SynthError::Image {
        path: out_png.to_path_buf(),
        source,
    })
}

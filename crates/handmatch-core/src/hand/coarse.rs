//! The coarse crop the landmark model needs before it can find anything: the hand's
//! bounding box (from its contrast with the light background, as in 11k Hands photos) plus
//! a margin, padded to a square, in the four right-angle rotations.

use image::{Rgb, RgbImage};

use super::landmarks::LANDMARK_INPUT;
use super::similarity::Similarity;
use crate::resize::resize;

/// A pixel is foreground when a channel differs from the background by more than this (of
/// 255); the silhouette features of the hand graph use the same rule.
pub const FOREGROUND_DIFFERENCE: i32 = 40;
/// A row or column belongs to the hand when this fraction of it is foreground; single
/// noisy pixels and JPEG ringing do not stretch the box.
const MIN_FOREGROUND_FRACTION: f32 = 0.01;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CoarseOptions {
    /// Added on every side, as a fraction of the box's larger side.
    pub margin: f32,
}

impl Default for CoarseOptions {
    fn default() -> Self {
        Self { margin: 0.15 }
    }
}

/// One view the landmark model is shown: the crop and how image points map into it.
pub struct CoarseView {
    pub crop: RgbImage,
    /// Image coordinates → crop coordinates.
    pub from_image: Similarity,
    /// Clockwise rotation, degrees.
    pub rotation: u32,
}

/// The background colour: the per-channel median of the border pixels.
pub fn background(image: &RgbImage) -> Rgb<u8> {
    let (w, h) = image.dimensions();
    let mut border: Vec<&Rgb<u8>> = Vec::with_capacity(2 * (w + h) as usize);
    for x in 0..w {
        border.push(image.get_pixel(x, 0));
        border.push(image.get_pixel(x, h - 1));
    }
    for y in 0..h {
        border.push(image.get_pixel(0, y));
        border.push(image.get_pixel(w - 1, y));
    }
    let median = |c: usize| {
        let mut v: Vec<u8> = border.iter().map(|p| p[c]).collect();
        v.sort_unstable();
        v[v.len() / 2]
    };
    Rgb([median(0), median(1), median(2)])
}

/// The foreground's bounding box `(x0, y0, x1, y1)`, or the whole image when nothing
/// stands out.
pub fn foreground_box(image: &RgbImage, bg: Rgb<u8>) -> (u32, u32, u32, u32) {
    let (w, h) = image.dimensions();
    let mut rows = vec![0u32; h as usize];
    let mut cols = vec![0u32; w as usize];
    for (x, y, p) in image.enumerate_pixels() {
        let differs = (0..3).any(|c| (p[c] as i32 - bg[c] as i32).abs() > FOREGROUND_DIFFERENCE);
        if differs {
            rows[y as usize] += 1;
            cols[x as usize] += 1;
        }
    }
    let span = |counts: &[u32], len_other: u32| {
        let min = ((len_other as f32 * MIN_FOREGROUND_FRACTION).ceil() as u32).max(2);
        let first = counts.iter().position(|&c| c >= min)?;
        let last = counts.iter().rposition(|&c| c >= min)?;
        Some((first as u32, last as u32 + 1))
    };
    match (span(&cols, h), span(&rows, w)) {
        (Some((x0, x1)), Some((y0, y1))) => (x0, y0, x1, y1),
        _ => (0, 0, w, h),
    }
}

/// The square crop around the hand, unrotated: image → crop.
pub fn coarse_transform(image: &RgbImage, opts: CoarseOptions) -> (Similarity, Rgb<u8>) {
    let bg = background(image);
    let (x0, y0, x1, y1) = foreground_box(image, bg);
    let side = ((x1 - x0).max(y1 - y0) as f32 * (1.0 + 2.0 * opts.margin)).max(1.0);
    let cx = (x0 + x1) as f32 / 2.0;
    let cy = (y0 + y1) as f32 / 2.0;
    let k = LANDMARK_INPUT as f32 / side;
    let half = LANDMARK_INPUT as f32 / 2.0;
    (
        Similarity {
            m: [k, 0.0, half - k * cx, 0.0, k, half - k * cy],
        },
        bg,
    )
}

/// The four views: the coarse crop rotated by 0, 90, 180 and 270 degrees clockwise.
pub fn coarse_views(image: &RgbImage, opts: CoarseOptions) -> Vec<CoarseView> {
    let (t, bg) = coarse_transform(image, opts);
    let crop = warp(image, &t, LANDMARK_INPUT, bg);
    let s = LANDMARK_INPUT as f32;
    let rotations = [
        (0, Similarity::IDENTITY),
        (
            90,
            Similarity {
                m: [0.0, -1.0, s, 1.0, 0.0, 0.0],
            },
        ),
        (
            180,
            Similarity {
                m: [-1.0, 0.0, s, 0.0, -1.0, s],
            },
        ),
        (
            270,
            Similarity {
                m: [0.0, 1.0, 0.0, -1.0, 0.0, s],
            },
        ),
    ];
    rotations
        .into_iter()
        .map(|(rotation, r)| CoarseView {
            crop: match rotation {
                0 => crop.clone(),
                90 => image::imageops::rotate90(&crop),
                180 => image::imageops::rotate180(&crop),
                _ => image::imageops::rotate270(&crop),
            },
            from_image: t.then(&r),
            rotation,
        })
        .collect()
}

/// Warps `image` into a `side`-square crop through `t` (image → crop), filling outside
/// pixels with `fill`. A strong reduction first goes through an antialiased resize, so the
/// bilinear warp never skips over pixels.
pub fn warp(image: &RgbImage, t: &Similarity, side: u32, fill: Rgb<u8>) -> RgbImage {
    let (mut source, mut t) = (None, *t);
    let scale = t.scale();
    if scale < 0.5 {
        let k = (2.0 * scale).min(1.0);
        let w = ((image.width() as f32 * k).round() as u32).max(1);
        let h = ((image.height() as f32 * k).round() as u32).max(1);
        let kx = w as f32 / image.width() as f32;
        let ky = h as f32 / image.height() as f32;
        source = Some(resize(image, w, h));
        // Resized pixel (x', y') came from image point (x'/kx, y'/ky).
        let back = Similarity {
            m: [1.0 / kx, 0.0, 0.0, 0.0, 1.0 / ky, 0.0],
        };
        t = back.then(&t);
    }
    let source = source.as_ref().unwrap_or(image);
    let mut out = RgbImage::from_pixel(side, side, fill);
    let projection = imageproc::geometric_transformations::Projection::from_matrix(t.to_matrix())
        .expect("a similarity with a non-zero scale is invertible");
    imageproc::geometric_transformations::warp_into(
        source,
        projection,
        imageproc::geometric_transformations::Interpolation::Bilinear,
        imageproc::geometric_transformations::Border::Constant(fill),
        &mut out,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene() -> RgbImage {
        // A dark 40x100 "hand" on a white 320x240 background.
        RgbImage::from_fn(320, 240, |x, y| {
            if (100..140).contains(&x) && (50..150).contains(&y) {
                Rgb([120, 80, 60])
            } else {
                Rgb([250, 250, 248])
            }
        })
    }

    #[test]
    fn box_margin_square_and_rotations() {
        let img = scene();
        assert_eq!(background(&img), Rgb([250, 250, 248]));
        assert_eq!(foreground_box(&img, background(&img)), (100, 50, 140, 150));
        let views = coarse_views(&img, CoarseOptions::default());
        assert_eq!(views.len(), 4);
        // The box's centre lands in the crop's centre, and 100 px + 2·15 % fills 224.
        let t = views[0].from_image;
        let c = t.apply([120.0, 100.0]);
        assert!((c[0] - 112.0).abs() < 1e-3 && (c[1] - 112.0).abs() < 1e-3);
        assert!((t.scale() - 224.0 / 130.0).abs() < 1e-4);
        // The top-left of the hand goes to the top-right after a clockwise quarter turn.
        let p = views[1].from_image.apply([100.0, 50.0]);
        let q = views[0].from_image.apply([100.0, 50.0]);
        assert!((p[0] - (224.0 - q[1])).abs() < 1e-3 && (p[1] - q[0]).abs() < 1e-3);
        for v in &views {
            assert_eq!(v.crop.dimensions(), (224, 224));
            // The pixel the transform says is the hand's centre is hand-coloured.
            let c = v.from_image.apply([120.0, 100.0]);
            assert_eq!(
                v.crop.get_pixel(c[0] as u32, c[1] as u32),
                &Rgb([120, 80, 60])
            );
        }
    }
}

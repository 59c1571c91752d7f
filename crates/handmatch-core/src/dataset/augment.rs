//! Training augmentation on decoded images, the reference study's set: random resized crop,
//! horizontal flip, rotation up to ±15°, colour jitter, random greyscale. Seeded: the same
//! RNG state gives the same view.

use image::{Rgb, RgbImage};
use imageproc::geometric_transformations::{rotate_about_center, Border, Interpolation};
use rand::Rng;

use crate::resize::resize;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Augment {
    /// Output side S.
    pub size: u32,
    /// Area fraction range of the random crop (torchvision's `scale`).
    pub crop_scale: (f64, f64),
    /// Aspect-ratio range of the random crop (torchvision's `ratio`).
    pub crop_ratio: (f64, f64),
    pub flip_probability: f64,
    pub max_rotation_degrees: f32,
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
    /// Hue shift, as a fraction of the colour wheel (at most 0.5).
    pub hue: f32,
    pub greyscale_probability: f64,
}

impl Augment {
    pub fn new(size: u32) -> Self {
        Self {
            size,
            crop_scale: (0.6, 1.0),
            crop_ratio: (3.0 / 4.0, 4.0 / 3.0),
            flip_probability: 0.5,
            max_rotation_degrees: 15.0,
            brightness: 0.2,
            contrast: 0.2,
            saturation: 0.2,
            hue: 0.05,
            greyscale_probability: 0.1,
        }
    }

    /// For crops already aligned to a canonical hand pose: milder geometry (the whole hand
    /// must stay in view) and no flip (alignment fixed which way the thumb points).
    pub fn aligned_hand(size: u32) -> Self {
        Self {
            crop_scale: (0.85, 1.0),
            crop_ratio: (0.9, 1.0 / 0.9),
            flip_probability: 0.0,
            max_rotation_degrees: 10.0,
            ..Self::new(size)
        }
    }

    pub fn apply(&self, image: &RgbImage, rng: &mut impl Rng) -> RgbImage {
        let crop = self.random_resized_crop(image, rng);
        let mut out = if rng.random_bool(self.flip_probability) {
            image::imageops::flip_horizontal(&crop)
        } else {
            crop
        };
        if self.max_rotation_degrees > 0.0 {
            let deg = rng.random_range(-self.max_rotation_degrees..=self.max_rotation_degrees);
            // The photos have a plain light background, so the corners are filled with white
            // rather than torchvision's black, which would be an artificial cue.
            out = rotate_about_center(
                &out,
                deg.to_radians(),
                Interpolation::Bilinear,
                Border::Constant(Rgb([255, 255, 255])),
            );
        }
        self.colour_jitter(&mut out, rng);
        if rng.random_bool(self.greyscale_probability) {
            for p in out.pixels_mut() {
                let y = luma(p).round().clamp(0.0, 255.0) as u8;
                *p = Rgb([y, y, y]);
            }
        }
        out
    }

    /// torchvision's `RandomResizedCrop`: up to ten tries at a box of random area and aspect
    /// ratio, else the central box of the clamped ratio.
    fn random_resized_crop(&self, image: &RgbImage, rng: &mut impl Rng) -> RgbImage {
        let (w, h) = (image.width() as f64, image.height() as f64);
        let area = w * h;
        let (lr0, lr1) = (self.crop_ratio.0.ln(), self.crop_ratio.1.ln());
        for _ in 0..10 {
            let target = area * rng.random_range(self.crop_scale.0..=self.crop_scale.1);
            let ratio = rng.random_range(lr0..=lr1).exp();
            let cw = (target * ratio).sqrt().round();
            let ch = (target / ratio).sqrt().round();
            if cw >= 1.0 && ch >= 1.0 && cw <= w && ch <= h {
                let x = rng.random_range(0..=(w - cw) as u32);
                let y = rng.random_range(0..=(h - ch) as u32);
                let view = image::imageops::crop_imm(image, x, y, cw as u32, ch as u32).to_image();
                return resize(&view, self.size, self.size);
            }
        }
        let in_ratio = w / h;
        let (cw, ch) = if in_ratio < self.crop_ratio.0 {
            (w, (w / self.crop_ratio.0).round())
        } else if in_ratio > self.crop_ratio.1 {
            ((h * self.crop_ratio.1).round(), h)
        } else {
            (w, h)
        };
        let x = ((w - cw) / 2.0) as u32;
        let y = ((h - ch) / 2.0) as u32;
        let view = image::imageops::crop_imm(image, x, y, cw as u32, ch as u32).to_image();
        resize(&view, self.size, self.size)
    }

    /// Brightness, contrast, saturation and hue, each by a random factor (fixed order).
    fn colour_jitter(&self, image: &mut RgbImage, rng: &mut impl Rng) {
        let factor = |rng: &mut dyn rand::RngCore, amount: f32| {
            if amount > 0.0 {
                rng.random_range((1.0 - amount).max(0.0)..=1.0 + amount)
            } else {
                1.0
            }
        };
        let b = factor(rng, self.brightness);
        let c = factor(rng, self.contrast);
        let s = factor(rng, self.saturation);
        let hue = if self.hue > 0.0 {
            rng.random_range(-self.hue..=self.hue)
        } else {
            0.0
        };
        let n = (image.width() * image.height()).max(1) as f32;
        let mean_luma = image.pixels().map(|p| luma(p) * b).sum::<f32>() / n;
        for p in image.pixels_mut() {
            let mut v = p.0.map(|x| x as f32 * b);
            v = v.map(|x| (x - mean_luma) * c + mean_luma);
            let y = 0.299 * v[0] + 0.587 * v[1] + 0.114 * v[2];
            v = v.map(|x| (x - y) * s + y);
            if hue != 0.0 {
                v = shift_hue(v, hue);
            }
            *p = Rgb(v.map(|x| x.round().clamp(0.0, 255.0) as u8));
        }
    }
}

fn luma(p: &Rgb<u8>) -> f32 {
    0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32
}

/// Rotates the hue of an RGB triple (0..255 floats) by `shift` turns, through HSV.
fn shift_hue(rgb: [f32; 3], shift: f32) -> [f32; 3] {
    let [r, g, b] = rgb.map(|x| x.clamp(0.0, 255.0) / 255.0);
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let delta = max - min;
    if delta <= f32::EPSILON {
        return rgb;
    }
    let h = if max == r {
        ((g - b) / delta).rem_euclid(6.0)
    } else if max == g {
        (b - r) / delta + 2.0
    } else {
        (r - g) / delta + 4.0
    } / 6.0;
    let h = (h + shift).rem_euclid(1.0) * 6.0;
    let (s, v) = (delta / max, max);
    let i = h.floor();
    let f = h - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    let out = match i as i32 % 6 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    };
    out.map(|x| x * 255.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn picture() -> RgbImage {
        RgbImage::from_fn(160, 120, |x, y| {
            Rgb([(x * 3 % 256) as u8, (y * 2 % 256) as u8, 90])
        })
    }

    #[test]
    fn same_seed_same_view_other_seed_other_view() {
        let aug = Augment::new(64);
        let a = aug.apply(&picture(), &mut ChaCha8Rng::seed_from_u64(1));
        let b = aug.apply(&picture(), &mut ChaCha8Rng::seed_from_u64(1));
        let c = aug.apply(&picture(), &mut ChaCha8Rng::seed_from_u64(2));
        assert_eq!(a.dimensions(), (64, 64));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn hue_shift_of_a_full_turn_is_identity_and_greys_are_untouched() {
        let c = [200.0, 120.0, 40.0];
        let back = shift_hue(c, 1.0);
        for (x, y) in c.iter().zip(back) {
            assert!((x - y).abs() < 1e-3);
        }
        assert_eq!(shift_hue([50.0, 50.0, 50.0], 0.3), [50.0, 50.0, 50.0]);
        // A third of a turn maps red to green.
        let g = shift_hue([255.0, 0.0, 0.0], 1.0 / 3.0);
        assert!(g[1] > 250.0 && g[0] < 5.0 && g[2] < 5.0, "{g:?}");
    }

    #[test]
    fn without_randomness_the_crop_is_a_plain_resize() {
        let mut aug = Augment::new(40);
        aug.crop_scale = (1.0, 1.0);
        aug.crop_ratio = (4.0 / 3.0, 4.0 / 3.0);
        aug.flip_probability = 0.0;
        aug.max_rotation_degrees = 0.0;
        aug.brightness = 0.0;
        aug.contrast = 0.0;
        aug.saturation = 0.0;
        aug.hue = 0.0;
        aug.greyscale_probability = 0.0;
        let out = aug.apply(&picture(), &mut ChaCha8Rng::seed_from_u64(0));
        assert_eq!(out, resize(&picture(), 40, 40));
    }
}

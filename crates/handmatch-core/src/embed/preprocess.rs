//! The evaluation transform, the one implementation that the server, the trainer's feature
//! extraction and the offline evaluation all use: resize the short side to R (256 for a
//! 224 input, the reference study's setting), then centre-crop S x S.

use image::RgbImage;

use super::metadata::ArtefactMetadata;
use crate::resize::resize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalTransform {
    pub resize_short_side: u32,
    pub crop: u32,
}

impl EvalTransform {
    pub fn new(resize_short_side: u32, crop: u32) -> Self {
        assert!(
            crop > 0 && resize_short_side >= crop,
            "resize {resize_short_side} must be at least the crop {crop}"
        );
        Self {
            resize_short_side,
            crop,
        }
    }

    pub fn for_model(meta: &ArtefactMetadata) -> Self {
        Self::new(meta.resize_short_side, meta.input_size)
    }

    /// The size after the resize step, torchvision's rounding (the long side truncated).
    pub fn resized_size(&self, width: u32, height: u32) -> (u32, u32) {
        let r = self.resize_short_side as u64;
        if width <= height {
            (r as u32, (r * height as u64 / width as u64) as u32)
        } else {
            ((r * width as u64 / height as u64) as u32, r as u32)
        }
    }

    /// `S x S` RGB pixels, row-major HWC: exactly the artefact's input layout.
    pub fn apply(&self, image: &RgbImage) -> RgbImage {
        let (w, h) = self.resized_size(image.width(), image.height());
        let resized = resize(image, w, h);
        let crop = self.crop;
        // torchvision's CenterCrop: offsets rounded half to even of (size − crop) / 2.
        let left = ((w - crop) as f64 / 2.0).round_ties_even() as u32;
        let top = ((h - crop) as f64 / 2.0).round_ties_even() as u32;
        image::imageops::crop_imm(&resized, left, top, crop, crop).to_image()
    }
}

/// What the embedding session takes for one decoded image: the centre crop, or for hand
/// models the whole image (alignment runs the landmark model, so it happens in the session).
pub fn model_input(meta: &ArtefactMetadata, image: RgbImage) -> RgbImage {
    if meta.hand_alignment.is_some() {
        image
    } else {
        EvalTransform::for_model(meta).apply(&image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn short_side_goes_to_256_then_a_centred_224_crop() {
        let t = EvalTransform::new(256, 224);
        assert_eq!(t.resized_size(1600, 1200), (341, 256));
        assert_eq!(t.resized_size(180, 240), (256, 341));
        let img = RgbImage::from_fn(320, 240, |x, _| {
            if x < 160 {
                Rgb([255, 0, 0])
            } else {
                Rgb([0, 0, 255])
            }
        });
        let out = t.apply(&img);
        assert_eq!(out.dimensions(), (224, 224));
        // The red/blue boundary stays in the middle of the crop.
        assert_eq!(out.get_pixel(100, 112)[0], 255);
        assert_eq!(out.get_pixel(124, 112)[2], 255);
    }

    #[test]
    fn uniform_image_stays_uniform() {
        let img = RgbImage::from_pixel(97, 131, Rgb([12, 200, 99]));
        let out = EvalTransform::new(64, 56).apply(&img);
        assert!(out.pixels().all(|p| p == &Rgb([12, 200, 99])));
    }
}

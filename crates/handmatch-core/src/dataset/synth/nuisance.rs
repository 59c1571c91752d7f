//! Per-photo variation that says nothing about who the hand belongs to: pose, finger spread,
//! lighting, background, sensor noise and compression.

use rand::Rng;

use super::normal::standard_normal;
use super::raster::Colour;
use super::traits::FINGER_COUNT;

pub(super) struct ImageNuisance {
    /// In-plane rotation, radians.
    pub rotation: f32,
    pub scale: f32,
    /// Offset of the hand from its usual place, as fractions of the image width and (for the usual
    /// landscape photos) height.
    pub shift: (f32, f32),
    /// 0 = fingers closed .. 1 = fully spread.
    pub spread: f32,
    /// Small per-finger angle changes (index..little, then thumb), radians.
    pub finger_jitter: [f32; FINGER_COUNT + 1],
    pub brightness: f32,
    pub contrast: f32,
    pub white_balance: [f32; 3],
    pub background: Colour,
    /// Brightness change of the background from the top to the bottom edge.
    pub background_falloff: f32,
    /// Standard deviation of the luminance noise, in 8-bit levels.
    pub noise_sigma: f32,
    pub jpeg_quality: u8,
}

impl ImageNuisance {
    pub(super) fn sample(rng: &mut impl Rng) -> Self {
        let rotation = rng.random_range(-15f32..15.0).to_radians();
        let scale = rng.random_range(0.9..1.1);
        let shift = (rng.random_range(-0.1..0.1), rng.random_range(-0.05..0.05));
        // Most people in 11k Hands hold their fingers together or slightly apart.
        let spread = rng.random::<f32>().powi(2);
        let finger_jitter = [0; FINGER_COUNT + 1].map(|_| 0.025 * standard_normal(rng));
        let brightness = rng.random_range(-10.0..10.0);
        let contrast = rng.random_range(0.9..1.1);
        let white_balance = [0; 3].map(|_| 1.0 + 0.008 * standard_normal(rng));
        let white = rng.random_range(240.0..253.0);
        let background = Colour([0; 3].map(|_| white + rng.random_range(-1.5..1.5)));
        let background_falloff = rng.random_range(-10.0..4.0);
        let noise_sigma = rng.random_range(1.0..2.5);
        let jpeg_quality = rng.random_range(70..=95);
        ImageNuisance {
            rotation,
            scale,
            shift,
            spread,
            finger_jitter,
            brightness,
            contrast,
            white_balance,
            background,
            background_falloff,
            noise_sigma,
            jpeg_quality,
        }
    }
}
